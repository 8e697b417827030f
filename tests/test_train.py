"""The Trainer: it learns, it stops early, it resumes exactly, it never leaves half a checkpoint."""

import pytest
import torch
from torch import nn

from dlbook.metrics import accuracy
from dlbook.train import Checkpoint, EarlyStopping, LRSchedule, Trainer, autocast_dtype


class Batches:
    """A tiny re-iterable loader whose shuffle depends only on (seed, epoch), like dlbook's TensorLoader."""

    def __init__(self, x, y, batch_size=16, seed=0):
        self.x, self.y, self.batch_size, self.seed, self.epoch = x, y, batch_size, seed, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        order = torch.randperm(len(self.x), generator=g)
        for i in range(0, len(order), self.batch_size):
            idx = order[i:i + self.batch_size]
            yield self.x[idx], self.y[idx]


def blobs(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 8, generator=g) + 2.5 * nn.functional.one_hot(y, 8).float()
    return x, y


def make(seed=0, dropout=0.2, callbacks=(), precision="fp32"):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return Trainer(model, opt, nn.CrossEntropyLoss(), device="cpu", precision=precision,
                   metrics={"accuracy": accuracy}, callbacks=list(callbacks), progress=False)


def test_training_lowers_the_loss_and_learns():
    x, y = blobs()
    trainer = make()
    history = trainer.fit(Batches(x, y), Batches(x, y), epochs=5)
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert trainer.evaluate(Batches(x, y))["accuracy"] > 0.9


def test_resume_continues_the_same_run(tmp_path):
    """Interrupted after 2 epochs and resumed: the same losses as one uninterrupted run (CPU, same seed)."""
    x, y = blobs()
    straight = make(seed=1)
    straight.fit(Batches(x, y, seed=3), epochs=4)

    ckpt = tmp_path / "run.pt"
    first = make(seed=1, callbacks=[Checkpoint(ckpt)])
    first.fit(Batches(x, y, seed=3), epochs=2)
    torch.manual_seed(12345)  # whatever happened in between must not matter
    resumed = make(seed=99, callbacks=[Checkpoint(ckpt)])
    resumed.fit(Batches(x, y, seed=3), epochs=4, resume_from=ckpt)

    assert [r["epoch"] for r in resumed.history.records] == [1, 2, 3, 4]
    assert resumed.history["train_loss"] == pytest.approx(straight.history["train_loss"], rel=0, abs=0)
    for a, b in zip(resumed.model.parameters(), straight.model.parameters()):
        assert torch.equal(a, b)


def test_resume_with_schedule_and_early_stopping(tmp_path):
    x, y = blobs()

    def build(seed):
        t = make(seed=seed)
        sched = torch.optim.lr_scheduler.StepLR(t.optimizer, step_size=1, gamma=0.5)
        t.callbacks = [LRSchedule(sched, "epoch"), EarlyStopping("train_loss", "min", patience=10), Checkpoint(tmp_path / "c.pt")]
        return t

    straight = build(2)
    straight.fit(Batches(x, y), epochs=3)
    part = build(2)
    part.fit(Batches(x, y), epochs=1)
    resumed = build(7)
    resumed.fit(Batches(x, y), epochs=3, resume_from=tmp_path / "c.pt")
    assert resumed.history["lr"] == straight.history["lr"]
    assert resumed.history["train_loss"] == straight.history["train_loss"]


def test_early_stopping_stops_and_restores_best():
    x, y = blobs()
    stop = EarlyStopping(monitor="val_loss", mode="min", patience=2)
    trainer = make(callbacks=[stop])
    trainer.optimizer.param_groups[0]["lr"] = 5.0  # diverges after a few steps: val loss gets worse
    try:
        trainer.fit(Batches(x, y), Batches(x, y), epochs=30)
    except FloatingPointError:
        pytest.skip("diverged to NaN before early stopping could act")
    assert len(trainer.history) < 30
    best = trainer.history.best("val_loss", "min")
    assert stop.best_epoch == best["epoch"]
    assert trainer.evaluate(Batches(x, y))["loss"] == pytest.approx(best["val_loss"], rel=1e-5)


def test_early_stopping_names_the_missing_key():
    x, y = blobs(32)
    trainer = make(callbacks=[EarlyStopping(monitor="val_accuracy", mode="max")])
    with pytest.raises(KeyError, match="pass a val_loader"):
        trainer.fit(Batches(x, y), epochs=2)


def test_checkpoint_is_atomic_and_truncated_file_is_a_clear_error(tmp_path, monkeypatch):
    x, y = blobs(64)
    ckpt = tmp_path / "good.pt"
    trainer = make(callbacks=[Checkpoint(ckpt)])
    trainer.fit(Batches(x, y), epochs=1)
    good = ckpt.read_bytes()

    # A crash in the middle of writing leaves the previous checkpoint intact and no temp files.
    def crash(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint(ckpt)
    monkeypatch.undo()
    assert ckpt.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["good.pt"]

    half = tmp_path / "half.pt"
    half.write_bytes(good[: len(good) // 2])
    with pytest.raises(RuntimeError, match="cannot read checkpoint .*half.pt"):
        make().load_checkpoint(half)


def test_checkpoint_loads_with_weights_only(tmp_path):
    x, y = blobs(64)
    trainer = make(callbacks=[Checkpoint(tmp_path / "c.pt")])
    trainer.fit(Batches(x, y), epochs=1)
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    assert set(state) >= {"model", "optimizer", "history", "rng"}


def test_nan_loss_is_a_clear_error():
    x, y = blobs(32)
    x[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        make().fit(Batches(x, y, batch_size=32), epochs=1)


def test_bf16_autocast_path_trains_on_cpu():
    x, y = blobs()
    trainer = make(precision="bf16")
    dtypes = set()
    trainer.model[0].register_forward_hook(lambda m, i, out: dtypes.add(out.dtype))
    history = trainer.fit(Batches(x, y), epochs=3)
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert trainer.precision == "bf16" and dtypes == {torch.bfloat16}


def test_tuple_inputs_are_unpacked():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(8, 3)

        def forward(self, a, b):
            return self.linear(a + b)

    x, y = blobs(64)
    model = TwoInputs()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(),
                      device="cpu", progress=False)
    batches = [((x[:32], x[:32]), y[:32]), ((x[32:], x[32:]), y[32:])]
    trainer.fit(batches, epochs=1)
    out, tgt = trainer.predict(batches)
    assert out.shape == (64, 3) and torch.equal(tgt, y)


def test_precision_choice():
    assert autocast_dtype("cpu", "fp32") is None
    with pytest.raises(ValueError, match="precision"):
        autocast_dtype("cpu", "half")
