"""SST-2 and SST-5 from the real offline files."""

import os
import shutil
from pathlib import Path

import pytest
import torch

from dlbook.data import SST2_CLASSES, SST5_CLASSES, ChecksumError, CorruptDataError, load_sst, sources
from dlbook.data import sst

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("DLBOOK_DATA") or ROOT.parent / "shared" / "data")
pytestmark = pytest.mark.skipif(not (DATA / "sst" / "stsa.fine.train").is_file(),
                                reason=f"SST not found under {DATA}: set DLBOOK_DATA")

COUNTS = {  # (fine, split): per-class counts of the published splits
    (False, "train"): [3310, 3610], (False, "dev"): [428, 444], (False, "test"): [912, 909],
    (True, "train"): [1092, 2218, 1624, 2322, 1288], (True, "dev"): [139, 289, 229, 279, 165],
    (True, "test"): [279, 633, 389, 510, 399],
}


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DLBOOK_DATA", str(DATA))
    monkeypatch.setenv("DLBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DLBOOK_OFFLINE", "1")
    monkeypatch.delenv("DLBOOK_MIRROR", raising=False)
    return tmp_path


@pytest.mark.parametrize("fine,split", list(COUNTS))
def test_sst_counts_labels_and_texts(env, fine, split):
    texts, labels = load_sst(split, fine=fine)
    assert len(texts) == sum(COUNTS[fine, split]) == len(labels)
    assert labels.dtype == torch.int64 and labels.bincount().tolist() == COUNTS[fine, split]
    assert all(isinstance(t, str) and t and t == t.strip() for t in texts)
    assert len(SST5_CLASSES if fine else SST2_CLASSES) == len(COUNTS[fine, split])


def test_first_training_sentence(env):
    texts, labels = load_sst("train")
    assert texts[0].startswith("a stirring , funny and finally transporting re-imagining")
    assert SST2_CLASSES[int(labels[0])] == "positive"
    assert "\xa0" in " ".join(texts)  # three sentences hold a no-break space; it stays inside its line


def test_truncated_copy_is_a_checksum_error_naming_it(env, monkeypatch, tmp_path):
    offline = tmp_path / "offline" / "sst"
    shutil.copytree(DATA / "sst", offline)
    damaged = offline / "stsa.binary.train"
    damaged.write_bytes(damaged.read_bytes()[: 200_000])
    monkeypatch.setenv("DLBOOK_DATA", str(offline.parent))
    with pytest.raises(ChecksumError) as info:
        load_sst("train")
    assert str(damaged) in str(info.value) and sst.FILES["stsa.binary.train"].sha256 in str(info.value)
    assert load_sst("dev")[1].shape == (872,)  # the other files are still fine


def test_malformed_line_names_file_and_line(env, monkeypatch):
    spec = sources.FileSpec("sst/stsa.binary.dev", sha256="0" * 64)
    monkeypatch.setitem(sst.FILES, "stsa.binary.dev", spec)
    monkeypatch.setattr(sst, "fetch_bytes", lambda s: b"1 fine\n7 out of range\n")
    with pytest.raises(CorruptDataError, match="sst/stsa.binary.dev line 2"):
        load_sst("dev")


def test_bad_split_is_a_value_error(env):
    with pytest.raises(ValueError, match="'train', 'dev' or 'test'"):
        load_sst("validation")


@pytest.mark.parametrize("raw,line", [
    (b"1 fine\n\xb2 superscript two\n", 2),               # latin-1 bytes: not UTF-8
    (b"1 fine\n0 ok\n1 caf\xc3\n", 3),                   # UTF-8 cut inside a character
    ("1 fine\n² a superscript label\n".encode(), 2),     # str.isdigit() accepts '²'; int() does not
    ("1 fine\n١ an Arabic-Indic digit\n".encode(), 2),   # a digit, but not one SST writes
])
def test_undecodable_bytes_and_odd_digits_are_corrupt_data_naming_file_and_line(env, monkeypatch, raw, line):
    monkeypatch.setitem(sst.FILES, "stsa.binary.dev", sources.FileSpec("sst/stsa.binary.dev", sha256="0" * 64))
    monkeypatch.setattr(sst, "fetch_bytes", lambda s: raw)
    with pytest.raises(CorruptDataError, match=f"sst/stsa.binary.dev line {line}"):
        load_sst("dev")
