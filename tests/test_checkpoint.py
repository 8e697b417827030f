"""Checkpoints: checked on load, never lost to a full disk or NaN weights, resumed by name after checking everything."""

import errno
import random

import numpy as np
import pytest
import torch

import dlbook.files
from dlbook.files import CorruptFileError, DiskFullError, load_checked
from dlbook.train import Checkpoint, EarlyStopping, LRSchedule


def _params(trainer):
    return [p.detach().clone() for p in trainer.model.parameters()]


def _same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a, b))


def test_a_flipped_bit_is_an_error_naming_the_file(tmp_path, batches, blobs, make_trainer):
    x, y = blobs(64)
    make_trainer(callbacks=[Checkpoint(tmp_path / "run.pt")]).fit(batches(x, y), epochs=1)
    data = bytearray((tmp_path / "run.pt").read_bytes())
    data[len(data) // 2] ^= 0x10
    (tmp_path / "run.pt").write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="run.pt"):
        make_trainer().load_checkpoint(tmp_path / "run.pt")


def test_full_disk_names_the_folder_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, batches, blobs,
                                                                     make_trainer):
    x, y = blobs(64)
    folder = tmp_path / "ckpts"
    trainer = make_trainer(callbacks=[Checkpoint(folder / "run.pt")])
    trainer.fit(batches(x, y), epochs=1)
    good = (folder / "run.pt").read_bytes()

    class HalfFull:
        """A file that takes a few bytes, then fails as a full disk does."""

        def __init__(self, f):
            self.f = f

        def write(self, b):
            self.f.write(bytes(b)[:10])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    monkeypatch.setattr(dlbook.files, "open", lambda *a, **k: HalfFull(open(*a, **k)), raising=False)
    with pytest.raises(DiskFullError, match="ckpts"):
        trainer.fit(batches(x, y), epochs=2)
    monkeypatch.undo()
    assert (folder / "run.pt").read_bytes() == good
    assert [p.name for p in folder.iterdir()] == ["run.pt"]


def test_checkpoint_sees_a_stop_whatever_the_callback_order(tmp_path, batches, blobs, make_trainer):
    x, y = blobs(64)
    ckpt = tmp_path / "run.pt"
    # Checkpoint first, every 10 epochs; EarlyStopping (patience 1 on a loss that cannot improve) stops at epoch 2.
    trainer = make_trainer(callbacks=[Checkpoint(ckpt, every=10), EarlyStopping("train_loss", "min", patience=1,
                                                                                 min_delta=1e9)])
    trainer.fit(batches(x, y), epochs=20)
    assert len(trainer.history) == 2
    assert len(load_checked(ckpt)["history"]) == 2


def test_best_file_keeps_the_best_epoch(tmp_path, batches, blobs, make_trainer):
    x, y = blobs(64)
    ckpt = Checkpoint(tmp_path / "run.pt", monitor="val_loss", mode="min")
    trainer = make_trainer(callbacks=[ckpt])
    trainer.fit(batches(x, y), batches(x, y), epochs=3)
    best = trainer.history.best("val_loss", "min")
    assert len(load_checked(tmp_path / "run.best.pt")["history"]) == best["epoch"]
    assert len(load_checked(tmp_path / "run.pt")["history"]) == 3


def _scheduled(make_trainer, tmp_path, seed, order=(0, 1, 2), schedule=True):
    t = make_trainer(seed=seed)
    cbs = [EarlyStopping("train_loss", "min", patience=10), Checkpoint(tmp_path / "c.pt")]
    if schedule:
        cbs.insert(0, LRSchedule(torch.optim.lr_scheduler.MultiStepLR(t.optimizer, [2], gamma=0.1), "epoch"))
    t.callbacks = [cbs[i] for i in order if i < len(cbs)]
    return t


def test_resume_does_not_depend_on_callback_order(tmp_path, batches, blobs, make_trainer):
    x, y = blobs()
    straight = _scheduled(make_trainer, tmp_path / "a", 2)
    straight.fit(batches(x, y), epochs=3)
    _scheduled(make_trainer, tmp_path, 2).fit(batches(x, y), epochs=1)
    resumed = _scheduled(make_trainer, tmp_path, 7, order=(2, 1, 0))
    resumed.fit(batches(x, y), epochs=3, resume_from=tmp_path / "c.pt")
    assert resumed.history["lr"] == straight.history["lr"]
    assert resumed.history["train_loss"] == straight.history["train_loss"]


def test_resume_mismatches_are_clear_and_change_nothing(tmp_path, batches, blobs, make_trainer):
    x, y = blobs(64)
    _scheduled(make_trainer, tmp_path, 2).fit(batches(x, y), epochs=1)

    no_schedule = _scheduled(make_trainer, tmp_path, 3, schedule=False)
    before = _params(no_schedule)
    lacks = r"(?s)c.pt.*nothing was restored.*callbacks this trainer lacks: \[.LRSchedule\[MultiStepLR"
    with pytest.raises(ValueError, match=lacks):
        no_schedule.fit(batches(x, y), epochs=2, resume_from=tmp_path / "c.pt")
    assert _same(before, no_schedule.model.parameters()) and len(no_schedule.history) == 0

    adam = make_trainer(seed=3, optimizer="adam")
    adam.callbacks = _scheduled(make_trainer, tmp_path, 3).callbacks
    before = _params(adam)
    with pytest.raises(ValueError, match="optimizer is SGD, this trainer's is Adam"):
        adam.fit(batches(x, y), epochs=2, resume_from=tmp_path / "c.pt")
    assert _same(before, adam.model.parameters())

    wider = _scheduled(make_trainer, tmp_path, 3)
    wider.model[3] = torch.nn.Linear(32, 4)
    with pytest.raises(ValueError, match=r"shapes differ.*3.weight \(3, 32\) vs \(4, 32\)"):
        wider.load_checkpoint(tmp_path / "c.pt")


def test_duplicate_callback_names_are_an_error(tmp_path, make_trainer):
    trainer = make_trainer(callbacks=[EarlyStopping("val_loss"), EarlyStopping("val_loss", patience=5)])
    with pytest.raises(ValueError, match="EarlyStopping\\[val_loss\\].*name="):
        trainer.save_checkpoint(tmp_path / "c.pt")
    make_trainer(callbacks=[EarlyStopping("val_loss"), EarlyStopping("val_loss", name="slow")]).save_checkpoint(
        tmp_path / "c.pt")


def test_plain_state_dict_says_how_to_load_it(tmp_path, make_trainer):
    trainer = make_trainer()
    torch.save(trainer.model.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ValueError, match=r"weights.pt holds a plain state_dict.*model.load_state_dict"):
        trainer.load_checkpoint(tmp_path / "weights.pt")
    dlbook.files.save_checked(trainer.model.state_dict(), tmp_path / "checked.pt")
    with pytest.raises(ValueError, match="checked.pt holds a plain state_dict"):
        trainer.fit([], epochs=1, resume_from=tmp_path / "checked.pt")


def test_load_checkpoint_leaves_the_process_rng_alone(tmp_path, batches, blobs, make_trainer):
    x, y = blobs(64)
    make_trainer(callbacks=[Checkpoint(tmp_path / "c.pt")]).fit(batches(x, y), epochs=1)
    trainer = make_trainer()
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    trainer.load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(torch.get_rng_state(), states[0])
    assert (np.random.get_state()[1] == states[1]).all() and random.getstate() == states[2]


def test_resume_with_nothing_left_to_train_says_so(tmp_path, batches, blobs, make_trainer):
    x, y = blobs(64)
    make_trainer(callbacks=[Checkpoint(tmp_path / "c.pt")]).fit(batches(x, y), epochs=4)
    trainer = make_trainer(callbacks=[Checkpoint(tmp_path / "c.pt")])
    with pytest.raises(ValueError, match="already holds 4 epochs.*nothing to train.*epochs > 4"):
        trainer.fit(batches(x, y), epochs=2, resume_from=tmp_path / "c.pt")
    assert len(trainer.history) == 0
