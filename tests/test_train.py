"""The Trainer: it learns, it stops early, it resumes exactly, it never leaves half a checkpoint,
and it refuses what it cannot train on (non-finite gradients, empty or one-shot loaders)."""

import pytest
import torch
from torch import nn

from dlbook.files import CorruptFileError, load_checked
from dlbook.train import Checkpoint, EarlyStopping, LRSchedule, Trainer, autocast_dtype


def test_training_lowers_the_loss_and_learns(batches, blobs, make_trainer):
    x, y = blobs()
    trainer = make_trainer()
    history = trainer.fit(batches(x, y), batches(x, y), epochs=5)
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert trainer.evaluate(batches(x, y))["accuracy"] > 0.9


def test_resume_continues_the_same_run(tmp_path, batches, blobs, make_trainer):
    """Interrupted after 2 epochs and resumed: the same losses as one uninterrupted run (CPU, same seed)."""
    x, y = blobs()
    straight = make_trainer(seed=1)
    straight.fit(batches(x, y, seed=3), epochs=4)

    ckpt = tmp_path / "run.pt"
    first = make_trainer(seed=1, callbacks=[Checkpoint(ckpt)])
    first.fit(batches(x, y, seed=3), epochs=2)
    torch.manual_seed(12345)  # whatever happened in between must not matter
    resumed = make_trainer(seed=99, callbacks=[Checkpoint(ckpt)])
    resumed.fit(batches(x, y, seed=3), epochs=4, resume_from=ckpt)

    assert [r["epoch"] for r in resumed.history.records] == [1, 2, 3, 4]
    assert resumed.history["train_loss"] == pytest.approx(straight.history["train_loss"], rel=0, abs=0)
    for a, b in zip(resumed.model.parameters(), straight.model.parameters()):
        assert torch.equal(a, b)


def test_resume_with_schedule_and_early_stopping(tmp_path, batches, blobs, make_trainer):
    x, y = blobs()

    def build(seed):
        t = make_trainer(seed=seed)
        sched = torch.optim.lr_scheduler.StepLR(t.optimizer, step_size=1, gamma=0.5)
        t.callbacks = [LRSchedule(sched, "epoch"), EarlyStopping("train_loss", "min", patience=10), Checkpoint(tmp_path / "c.pt")]
        return t

    straight = build(2)
    straight.fit(batches(x, y), epochs=3)
    part = build(2)
    part.fit(batches(x, y), epochs=1)
    resumed = build(7)
    resumed.fit(batches(x, y), epochs=3, resume_from=tmp_path / "c.pt")
    assert resumed.history["lr"] == straight.history["lr"]
    assert resumed.history["train_loss"] == straight.history["train_loss"]


def test_early_stopping_stops_and_restores_best(batches, blobs, make_trainer):
    x, y = blobs()
    stop = EarlyStopping(monitor="val_loss", mode="min", patience=2)
    trainer = make_trainer(callbacks=[stop])
    trainer.optimizer.param_groups[0]["lr"] = 5.0  # diverges after a few steps: val loss gets worse
    try:
        trainer.fit(batches(x, y), batches(x, y), epochs=30)
    except FloatingPointError:
        pytest.skip("diverged to NaN before early stopping could act")
    assert len(trainer.history) < 30
    best = trainer.history.best("val_loss", "min")
    assert stop.best_epoch == best["epoch"]
    assert trainer.evaluate(batches(x, y))["loss"] == pytest.approx(best["val_loss"], rel=1e-5)


def test_early_stopping_names_the_missing_key(batches, blobs, make_trainer):
    x, y = blobs(32)
    trainer = make_trainer(callbacks=[EarlyStopping(monitor="val_accuracy", mode="max")])
    with pytest.raises(KeyError, match="pass a val_loader"):
        trainer.fit(batches(x, y), epochs=2)


def test_checkpoint_is_atomic_and_truncated_file_is_a_clear_error(tmp_path, monkeypatch, batches, blobs, make_trainer):
    x, y = blobs(64)
    ckpt = tmp_path / "good.pt"
    trainer = make_trainer(callbacks=[Checkpoint(ckpt)])
    trainer.fit(batches(x, y), epochs=1)
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
    with pytest.raises(CorruptFileError, match="half.pt"):
        make_trainer().load_checkpoint(half)


def test_checkpoint_loads_with_weights_only(tmp_path, batches, blobs, make_trainer):
    x, y = blobs(64)
    trainer = make_trainer(callbacks=[Checkpoint(tmp_path / "c.pt")])
    trainer.fit(batches(x, y), epochs=1)
    state = load_checked(tmp_path / "c.pt")  # verifies the SHA-256, then torch.load(weights_only=True)
    assert set(state) >= {"model", "optimizer", "history", "rng"}


def test_nan_loss_is_a_clear_error(batches, blobs, make_trainer):
    x, y = blobs(32)
    x[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        make_trainer().fit(batches(x, y, batch_size=32), epochs=1)


def test_bf16_autocast_path_trains_on_cpu(batches, blobs, make_trainer):
    x, y = blobs()
    trainer = make_trainer(precision="bf16")
    dtypes = set()
    trainer.model[0].register_forward_hook(lambda m, i, out: dtypes.add(out.dtype))
    history = trainer.fit(batches(x, y), epochs=3)
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert trainer.precision == "bf16" and dtypes == {torch.bfloat16}


def test_tuple_inputs_are_unpacked(blobs):
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


class PoisonAfter(nn.Module):
    """Identity whose backward turns the gradient into NaN from the ``after``-th forward on; the loss stays finite."""

    def __init__(self, after):
        super().__init__()
        self.after, self.calls = after, 0

    def forward(self, x):
        self.calls += 1
        if self.training and self.calls > self.after:
            x = x.clone()
            x.register_hook(lambda g: g * float("nan"))
        return x


def _poisoned(make_trainer, after, **kwargs):
    trainer = make_trainer(**kwargs)
    trainer.model.insert(1, PoisonAfter(after))
    return trainer


def test_nonfinite_gradient_with_finite_loss_stops_and_keeps_the_checkpoint(tmp_path, batches, blobs, make_trainer):
    x, y = blobs(64)  # 4 batches an epoch; the gradient of the 6th step (epoch 2) is NaN
    ckpt = tmp_path / "run.pt"
    trainer = _poisoned(make_trainer, after=5, callbacks=[Checkpoint(ckpt)], grad_clip=1.0)
    with pytest.raises(FloatingPointError, match=r"gradient is NaN or inf at step 5 .*on_nonfinite='skip'"):
        trainer.fit(batches(x, y), epochs=3)
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    state = load_checked(ckpt)
    assert len(state["history"]) == 1 and all(torch.isfinite(t).all() for t in state["model"].values())


def test_nonfinite_gradient_skip_leaves_weights_and_counts(batches, blobs, make_trainer):
    x, y = blobs(64)
    trainer = _poisoned(make_trainer, after=4, on_nonfinite="skip")
    history = trainer.fit(batches(x, y), epochs=2)  # every step of epoch 2 is poisoned: nothing changes
    assert history["skipped_steps"] == [0, 4]
    one_epoch = make_trainer(on_nonfinite="skip")
    one_epoch.fit(batches(x, y), epochs=1)
    assert all(torch.equal(a, b) for a, b in zip(one_epoch.model.parameters(), trainer.model.parameters()))
    with pytest.raises(ValueError, match="on_nonfinite"):
        make_trainer(on_nonfinite="ignore")


def test_checkpoint_refuses_nonfinite_weights(tmp_path, make_trainer):
    trainer = make_trainer()
    trainer.save_checkpoint(tmp_path / "c.pt")
    good = (tmp_path / "c.pt").read_bytes()
    with torch.no_grad():
        trainer.model[0].weight[0, 0] = float("inf")
    with pytest.raises(FloatingPointError, match=r"not saving .*c.pt.*0.weight"):
        trainer.save_checkpoint(tmp_path / "c.pt")
    assert (tmp_path / "c.pt").read_bytes() == good


def test_loader_without_len_trains_with_a_bar(blobs, make_trainer, capsys):
    x, y = blobs(64)
    data = torch.utils.data.TensorDataset(x, y)

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(data)

    trainer = make_trainer(progress=True)
    history = trainer.fit(torch.utils.data.DataLoader(Stream(), batch_size=16), epochs=2)
    assert len(history) == 2
    one_shot = make_trainer().fit(((x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)), epochs=1)
    assert len(one_shot) == 1


def test_empty_and_exhausted_loaders_are_clear_errors(batches, blobs, make_trainer):
    x, y = blobs(64)
    with pytest.raises(ValueError, match="training loader yielded no batches"):
        make_trainer().fit([], epochs=1)
    with pytest.raises(ValueError, match="validation loader yielded no batches"):
        make_trainer().fit(batches(x, y), [], epochs=1)
    with pytest.raises(ValueError, match="one-shot iterator"):
        make_trainer().fit(((x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)), epochs=2)


def test_loss_is_read_once_per_step(monkeypatch, batches, blobs, make_trainer):
    """One host read of the loss per step (each read is a device sync on a GPU), with callbacks and a bar."""
    x, y = blobs(64)
    reads = []
    for name in ("item", "tolist", "__float__"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda t, *a, _o=original, **k: reads.append(1) or _o(t, *a, **k))
    trainer = make_trainer(callbacks=[EarlyStopping("train_loss", patience=5)], progress=True)
    trainer.metrics = {}
    trainer.fit(batches(x, y), epochs=1)  # 4 steps
    assert len(reads) <= 4


def test_fit_again_with_no_epochs_left_is_an_error(batches, blobs, make_trainer):
    x, y = blobs(32)
    trainer = make_trainer()
    trainer.fit(batches(x, y), epochs=2)
    with pytest.raises(ValueError, match="already trained 2 epochs.*epochs > 2"):
        trainer.fit(batches(x, y), epochs=2)
    assert len(trainer.fit(batches(x, y), epochs=3)) == 3


def test_progress_is_validated(make_trainer):
    with pytest.raises(ValueError, match="progress='bar'"):
        make_trainer(progress="bar")
