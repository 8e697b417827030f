"""dlbook.files: the one atomic write, and tensor files that carry their own checksum."""

import errno
import os
import time

import pytest
import torch

from dlbook.files import (CorruptFileError, DiskFullError, atomic_write, load_checked, remove_stale_temps,
                          save_checked)


def test_save_and_load_checked_round_trip(tmp_path):
    path = tmp_path / "sub" / "state.pt"
    save_checked({"w": torch.arange(4.0), "step": 3}, path)
    state = load_checked(path)
    assert torch.equal(state["w"], torch.arange(4.0)) and state["step"] == 3
    assert [p.name for p in path.parent.iterdir()] == ["state.pt"]  # no temp file left behind


def test_one_flipped_bit_in_the_payload_is_an_error_that_names_the_file(tmp_path):
    path = tmp_path / "state.pt"
    save_checked({"w": torch.zeros(1000)}, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10  # one bit, inside the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="state.pt is corrupt") as info:
        load_checked(path)
    assert info.value.path == path


def test_truncated_file_is_corrupt(tmp_path):
    path = tmp_path / "state.pt"
    save_checked({"w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptFileError, match="corrupt"):
        load_checked(path)


def test_plain_torch_file_is_refused_with_the_way_to_load_it(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"weight": torch.ones(2)}, path)
    with pytest.raises(CorruptFileError, match=r"torch.load\(path, weights_only=True\)"):
        load_checked(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checked(tmp_path / "absent.pt")


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"good")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(path) as f:
            f.write(b"half")
            raise RuntimeError("boom")
    assert path.read_bytes() == b"good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_full_disk_is_an_error_naming_the_folder_and_the_old_file_survives(tmp_path, monkeypatch):
    path = tmp_path / "state.pt"
    save_checked({"w": torch.ones(3)}, path)
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFullError, match=str(tmp_path)) as info:
        save_checked({"w": torch.zeros(3)}, path)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert isinstance(info.value, OSError) and info.value.folder == tmp_path
    assert torch.equal(load_checked(path)["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]


def test_a_folder_at_the_destination_is_a_clear_error(tmp_path):
    (tmp_path / "state.pt").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        save_checked({}, tmp_path / "state.pt")


def test_stale_temps_of_killed_writers_are_removed_fresh_ones_and_other_files_kept(tmp_path):
    old = time.time() - 2 * 3600
    stale = [tmp_path / ".state.pt.0123456789ab.tmp", tmp_path / ".data.bin.ba9876543210.part"]
    fresh = tmp_path / ".state.pt.aaaaaaaaaaaa.tmp"
    foreign = tmp_path / ".someone-elses.tmp"
    for p in (*stale, fresh, foreign):
        p.write_bytes(b"x" * 10)
    for p in (*stale, foreign):
        os.utime(p, (old, old))
    save_checked({"w": torch.ones(1)}, tmp_path / "state.pt")  # a write cleans its folder
    assert all(not p.exists() for p in stale)
    assert fresh.exists() and foreign.exists()
    time.sleep(0.01)
    assert remove_stale_temps(tmp_path, older_than_s=0) == [fresh]
