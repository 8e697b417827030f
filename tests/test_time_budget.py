"""A time budget that re-plans the epochs and the schedule from the timed epochs, and weight averaging."""

import itertools

import pytest
import torch
from torch import nn

import dlbook.train.callbacks as callbacks
from dlbook.train import Checkpoint, EarlyStopping, LRSchedule, TimeBudget, WarmupLinearDecay, WeightAverage, linear_warmup_decay

pytestmark = pytest.mark.usefixtures("one_thread")


class FakeClock:
    """``time.perf_counter`` that moves ``tick`` seconds on every call, so epochs take a known time."""

    def __init__(self, tick):
        self.now, self.tick = 0.0, tick

    def __call__(self):
        self.now += self.tick
        return self.now


def test_replan_goes_on_without_a_jump_and_ends_at_zero():
    f = WarmupLinearDecay(warmup_steps=20, total_steps=100)
    before = [f(s) for s in range(11)]
    f.replan(step=10, total_steps=200)  # in the warm-up: it keeps its 20% share of the new total
    assert f.warmup_steps == 40 and f(10) == pytest.approx(before[10])
    climb = [f(s) for s in range(10, 41)]
    assert all(b > a for a, b in zip(climb, climb[1:])) and f(40) == pytest.approx(1.0)
    f.replan(step=150, total_steps=120 + 60)  # in the decay: linear from today's factor to 0 at the new end
    at = f(150)
    assert f(165) == pytest.approx(at / 2) and f(180) == 0.0 and f(500) == 0.0
    with pytest.raises(ValueError, match="after the current step"):
        f.replan(step=180, total_steps=180)


def test_replanned_factor_is_saved_with_the_scheduler():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = linear_warmup_decay(opt, warmup_steps=2, total_steps=10)
    for _ in range(5):
        opt.step()
        sched.step()
    sched.lr_lambdas[0].replan(5, 20)
    fresh = linear_warmup_decay(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), 2, 10)
    fresh.load_state_dict(sched.state_dict())
    assert fresh.lr_lambdas[0].total_steps == 20 and fresh.lr_lambdas[0](12) == sched.lr_lambdas[0](12)


def test_epochs_that_fit():
    budget = TimeBudget(100.0, margin=1.0)
    assert budget.epochs_that_fit(done=1, elapsed=10.0, last=10.0) == 10
    assert budget.epochs_that_fit(done=5, elapsed=50.0, last=20.0) == 7  # the slower last epoch decides
    assert budget.epochs_that_fit(done=9, elapsed=99.0, last=11.0) == 9  # no time for another
    with pytest.raises(ValueError, match="margin"):
        TimeBudget(100.0, margin=0)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(TypeError, match="linear_warmup_decay"):
        TimeBudget(100.0, torch.optim.lr_scheduler.StepLR(opt, step_size=1))


def test_time_budget_fits_the_epochs_and_the_schedule_ends_at_zero(monkeypatch, batches, blobs, make_trainer):
    x, y = blobs(64)
    loader = batches(x, y)  # 4 batches an epoch
    # every perf_counter call moves 1 s; an epoch here reads the clock a handful of times
    monkeypatch.setattr(callbacks.time, "perf_counter", FakeClock(1.0))
    trainer = make_trainer()
    schedule = linear_warmup_decay(trainer.optimizer, warmup_steps=2, total_steps=3 * len(loader))
    budget = TimeBudget(30.0, schedule, margin=1.0)
    trainer.callbacks = [LRSchedule(schedule, "batch"), budget]
    history = trainer.fit(loader, epochs=3)  # the first plan; the budget re-plans from the first epoch's time
    epochs = len(history.records)
    assert budget.plans and budget.plans[0][0] == 1 and epochs == budget.plans[-1][1] != 3
    assert budget.used <= 30.0
    assert history["lr"][-1] == 0.0 and min(history["lr"][:-1]) > 0  # reaches 0 on the last step, not before
    assert schedule.lr_lambdas[0].total_steps == epochs * len(loader)


def test_time_budget_stops_when_the_time_is_spent(monkeypatch, batches, blobs, make_trainer):
    x, y = blobs(64)
    monkeypatch.setattr(callbacks.time, "perf_counter", FakeClock(1.0))
    budget = TimeBudget(3.0, margin=1.0)
    trainer = make_trainer(callbacks=[budget])
    history = trainer.fit(batches(x, y), epochs=10)
    assert len(history.records) == 1 and budget.plans == [(1, 1)]


def test_time_budget_reads_the_clock_it_is_given(monkeypatch, batches, blobs, make_trainer):
    x, y = blobs(64)
    monkeypatch.setattr(callbacks.time, "perf_counter", FakeClock(1000.0))  # on the wall clock the budget is spent at once
    training = FakeClock(1.0)  # the clock given: 1 s a reading
    budget = TimeBudget(12.0, margin=1.0, clock=training)
    trainer = make_trainer(callbacks=[budget])
    history = trainer.fit(batches(x, y), epochs=20)
    assert 1 < len(history.records) < 20 and budget.used <= 12.0
    assert budget.used == training.now - 1.0  # read once when fit starts, once after every epoch
    assert budget.plans[-1][1] == len(history.records)


def test_time_budget_never_extends_a_plan_it_has_reached(batches, blobs, make_trainer):
    # chapter 4.1 on 2026-12-04: planned 20, reached 20, a fast last epoch left time for one more, and
    # epoch 21 trained at a learning rate of 0. Here: three 10 s epochs, then a 1 s one.
    readings = iter([0.0, 10.0, 20.0, 30.0, 31.0])
    x, y = blobs(64)
    loader = batches(x, y)
    trainer = make_trainer()
    schedule = linear_warmup_decay(trainer.optimizer, warmup_steps=1, total_steps=4 * len(loader))
    budget = TimeBudget(40.0, schedule, margin=1.0, clock=lambda: next(readings))
    trainer.callbacks = [LRSchedule(schedule, "batch"), budget]
    history = trainer.fit(loader, epochs=4)
    assert budget.epochs_that_fit(done=4, elapsed=31.0, last=1.0) == 5  # the time left would allow another
    assert len(history.records) == 4 and budget.plans == []  # but the plan of 4 was reached: the run ends there
    assert history["lr"][-1] == 0.0 and min(history["lr"][:-1]) > 0


def test_time_budget_resumes_with_the_time_it_had_used(tmp_path, monkeypatch, batches, blobs, make_trainer):
    x, y = blobs(64)
    monkeypatch.setattr(callbacks.time, "perf_counter", FakeClock(1.0))
    first = make_trainer(callbacks=[TimeBudget(1000.0), Checkpoint(tmp_path / "c.pt")])
    first.fit(batches(x, y), epochs=2)
    used = first.callbacks[0].used
    budget = TimeBudget(1000.0)
    resumed = make_trainer(callbacks=[budget, Checkpoint(tmp_path / "c.pt")])
    resumed.load_checkpoint(tmp_path / "c.pt")
    assert budget.used == used > 0 and budget.plans == first.callbacks[0].plans


def test_weight_average_is_the_ema_of_the_steps(batches, blobs, make_trainer):
    x, y = blobs(32)
    loader = batches(x, y)  # 2 batches
    trainer = make_trainer(dropout=0.0)
    seen = []

    class Record(callbacks.Callback):
        def on_train_batch_end(self, trainer, model, loss):
            seen.append([p.detach().clone() for p in model.parameters()])

    ema = WeightAverage(trainer.model, decay=0.75)
    trainer.callbacks = [Record(), ema]
    trainer.fit(loader, epochs=2)
    expected = seen[0]  # the first update copies the weights, then each step counts 1 - decay
    for step in seen[1:]:
        expected = [0.75 * e + 0.25 * s for e, s in zip(expected, step)]
    for got, want in zip(ema.average.module.parameters(), expected):
        torch.testing.assert_close(got, want)
    assert not all(torch.equal(a, b) for a, b in zip(ema.average.module.parameters(), trainer.model.parameters()))
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(trainer.model, decay=1.0)


def test_weight_average_resumes_exactly(tmp_path, batches, blobs, make_trainer):
    x, y = blobs(64)

    def build(seed):
        t = make_trainer(seed=seed)
        t.callbacks = [WeightAverage(t.model, 0.9), Checkpoint(tmp_path / "c.pt")]
        return t

    straight = build(1)
    straight.fit(batches(x, y, seed=3), epochs=3)
    build(1).fit(batches(x, y, seed=3), epochs=2)
    resumed = build(5)
    resumed.fit(batches(x, y, seed=3), epochs=3, resume_from=tmp_path / "c.pt")
    for a, b in itertools.zip_longest(resumed.callbacks[0].average.parameters(),
                                      straight.callbacks[0].average.parameters()):
        assert torch.equal(a, b)


def test_early_stopping_on_the_average_keeps_the_averages_best_epoch(batches, blobs, make_trainer, capsys):
    x, y = blobs(64)
    trainer = make_trainer(progress="epochs")
    ema = WeightAverage(trainer.model, 0.5, val_loader=batches(x, y))
    # "max" of the loss: the best epoch is the first, so restoring it really changes the average
    stopper = EarlyStopping("ema_val_loss", "max", patience=100, module=ema.average.module)
    kept = []

    class Watch(callbacks.Callback):
        def on_train_epoch_end(self, trainer, model):
            if stopper.best_epoch == trainer.history.records[-1]["epoch"]:
                kept[:] = [p.detach().clone() for p in ema.average.module.parameters()]

    trainer.callbacks = [ema, stopper, Watch()]  # the average is scored before the stopper reads its score
    trainer.fit(batches(x, y), epochs=4)
    assert "ema_val_accuracy" in trainer.history.records[-1] and "ema_val_loss" in capsys.readouterr().out
    assert stopper.best_epoch == 1 and len(trainer.history.records) == 4
    for got, want in zip(ema.average.module.parameters(), kept):
        assert torch.equal(got, want)  # the average's best epoch restored into the average
    assert not all(torch.equal(a, b) for a, b in zip(ema.average.module.parameters(), trainer.model.parameters()))


def test_history_plot_draws_the_averages_validation_beside_the_trainers():
    import matplotlib

    matplotlib.use("Agg")
    from dlbook.viz import plot_history

    records = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, "ema_val_loss": 1.05 / e,
                "train_accuracy": 0.5, "val_accuracy": 0.4, "ema_val_accuracy": 0.45} for e in (1, 2)]
    fig = plot_history(records)
    labels = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes]
    assert labels == [["train", "val", "ema val"], ["train accuracy", "val accuracy", "ema val accuracy"]]
