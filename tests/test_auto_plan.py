"""``podium auto``'s plan and its execution against the clock, on a fake clock with scripted step times: no model
is trained here (tests/test_auto.py trains a real one)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from podium.config import PodiumConfig
from podium.core.errors import PodiumError
from podium.engine.optim import warmup_cosine
from podium.engine.timing import StepTiming
from podium.multirun.auto.clock import parse_budget, shown_budget
from podium.multirun.auto.execute import Session, run_config, train_runs
from podium.multirun.auto.ladder import Candidate
from podium.multirun.auto.plan import (
    CLIMB_EPOCHS,
    FILL,
    FINISH_MIN_S,
    MAX_EPOCHS,
    MIN_EPOCHS,
    TARGET,
    Cost,
    Speed,
    Workload,
    fit_epochs,
    make_plan,
    plan_table,
    replan,
    run_cost,
    usable_s,
    with_sizes_between,
)

LADDER = (Candidate("small", 128), Candidate("mid", 160), Candidate("large", 224))
TIMINGS = {"small@128": StepTiming(0.004, 0.001, 0.002, 0.5), "mid@160": StepTiming(0.008, 0.002, 0.003, 0.6),
           "large@224": StepTiming(0.02, 0.005, 0.004, 0.8)}
WORK = Workload(n_train=1000, n_test=300, views=2, pseudo=False)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t


@dataclass
class FakeRun:
    path: Path
    metrics: dict = field(default_factory=dict)


@dataclass
class ScriptedTrainer:
    """Trains nothing: each epoch of each fold advances the clock by the plan's predicted epoch time x ``slowdown``
    (and the fixed part likewise), calling the epoch hook as pipeline.train does; records what started and ended."""

    clock: FakeClock
    session: Session
    slowdown: float = 1.0
    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    stopped: list[tuple[str, int, int]] = field(default_factory=list)

    def __call__(self, data_dir: Path, cfg: PodiumConfig, on_epoch) -> FakeRun:
        name = cfg.run.name.removeprefix("auto-")
        self.started.append(name)
        cost = next(r.cost for r in self.session.plan.runs if r.name == name)  # as planned (re-plans included)
        folds = cfg.cv.folds
        self.clock.t += cost.fixed_s * self.slowdown
        for fold in range(folds):
            for epoch in range(cfg.train.epochs):
                wall = cost.epoch(epoch + 1, cfg.train.epochs) / folds * self.slowdown
                self.clock.t += wall
                if on_epoch(fold, {"epoch": epoch + 1, "wall_s": wall}):  # ends the fold, as fit_fold does
                    self.stopped.append((name, fold, epoch + 1))
                    break
        self.finished.append(name)
        return FakeRun(Path(name), {"cv_score": 0.5, "metric": "accuracy", "per_fold": []})


def test_budgets_as_people_write_them() -> None:
    assert [parse_budget(b) for b in ("90s", "15m", "2h", "1h30m", "2h 5m 10s", 45)] == [
        90, 900, 7200, 5400, 7510, 45]
    for bad in ("", "2x", "h", "-5m", "0s", "1.5.2h"):
        with pytest.raises(PodiumError) as e:
            parse_budget(bad)
        assert "\n" not in str(e.value) and "90s, 15m, 2h or 1h30m" in str(e.value)
    assert shown_budget(5400) == "1h30m" and parse_budget(shown_budget(125.2)) == 126


@pytest.mark.parametrize("budget", [300, 900, 2700, 7200])
@pytest.mark.parametrize("pseudo", [False, True])
def test_a_plan_fills_its_budget(budget: float, pseudo: bool) -> None:
    plan = make_plan(TIMINGS, LADDER, dataclasses.replace(WORK, pseudo=pseudo), budget, 20.0, "cpu", "test")
    end = plan.predicted_end_s
    assert end <= budget * TARGET + 1e-6
    # filled, unless every run is at its most epochs already
    assert end >= 0.85 * budget * TARGET or all(r.epochs == MAX_EPOCHS for r in plan.runs)
    assert all(r.epochs >= MIN_EPOCHS for r in plan.runs) and len({r.name for r in plan.runs}) == len(plan.runs)
    costs = [r.cost.total(3) for r in plan.runs if not r.pseudo]
    assert costs[0] == min(costs)  # the cheapest first: it calibrates the clock for the others
    assert [r.pseudo for r in plan.runs] == sorted(r.pseudo for r in plan.runs)  # pseudo-labels last
    if pseudo and budget >= 2700:
        assert plan.runs[-1].pseudo and plan.runs[-1].name == "pseudo"
    table = plan_table(plan)
    assert table.splitlines()[0].split()[:6] == ["run", "model", "size", "epochs", "folds", "pred."]
    assert all(r.name in table for r in plan.runs) and "budget" in table.splitlines()[-1]
    assert set(plan.to_dict()) >= {"budget_s", "folds", "runs", "timings", "predicted_end_s"}


def test_larger_budgets_climb_the_ladder() -> None:
    small = make_plan(TIMINGS, LADDER, WORK, 240, 10.0, "cpu")
    large = make_plan(TIMINGS, LADDER, WORK, 7200, 10.0, "cpu")
    rank = {c: i for i, c in enumerate(LADDER)}
    assert max(rank[r.candidate] for r in large.runs) > max(rank[r.candidate] for r in small.runs)
    assert large.folds >= small.folds


def test_a_too_small_budget_is_refused_in_one_line_with_the_smallest_that_works() -> None:
    with pytest.raises(PodiumError) as e:
        make_plan(TIMINGS, LADDER, WORK, 30, 10.0, "cpu")
    message = str(e.value)
    assert "\n" not in message and "too small" in message and "smallest budget" in message
    smallest = parse_budget(message.rsplit("--budget ", 1)[1].rstrip("."))
    assert smallest > 30
    plan = make_plan(TIMINGS, LADDER, WORK, smallest, 10.0, "cpu")  # that budget is planned, not refused
    assert plan.runs and plan.predicted_end_s <= smallest


def test_fit_epochs_shrinks_the_longest_then_drops_the_last_and_grows_with_time_to_spare() -> None:
    costs = [Cost(10, 5), Cost(10, 5), Cost(20, 10)]
    assert fit_epochs(costs, 1000, [2, 2, 2]) == [MAX_EPOCHS] * 3
    assert fit_epochs(costs, 95, [5, 5, 5]) == [3, 4, 2]  # shrunk to 3, 3, 2 (90), then 5 s spare: +1 epoch
    assert fit_epochs(costs, 45, [5, 5, 5]) == [2, 3, 0]  # the last dropped (2 epochs of it do not fit); 5 s spare
    assert sum(c.total(e) for c, e in zip(costs, fit_epochs(costs, 200, [2, 2, 2]))) <= 200


def test_replanning_shortens_or_drops_later_runs_when_steps_are_slower() -> None:
    plan = make_plan(TIMINGS, LADDER, WORK, 1800, 10.0, "cpu")
    assert len(plan.runs) >= 2
    left = sum(r.predicted_s for r in plan.runs[1:])
    slower = replan(plan, 1, left, Speed(2.0, 2.0), add=False)
    assert slower.runs[0] == plan.runs[0]  # a run that has started is never changed
    assert sum(r.cost.scaled(Speed(2.0, 2.0)).total(r.epochs) for r in slower.runs[1:]) <= left
    before = {r.name: r.epochs for r in plan.runs[1:]}
    after = {r.name: r.epochs for r in slower.runs[1:]}
    assert any(after.get(n, 0) < e for n, e in before.items())


def _session(budget: float, clock: FakeClock, elapsed: float = 10.0) -> Session:
    plan = make_plan(TIMINGS, LADDER, WORK, budget, elapsed, "cpu", "test")
    return Session(plan, clock, clock.now() - elapsed, say=lambda _: None)


@pytest.mark.parametrize("slowdown", [1.0, 1.5, 2.5])
def test_runs_on_a_fake_clock_end_within_the_budget_and_every_started_run_finishes(slowdown: float) -> None:
    clock = FakeClock()
    session = _session(1800, clock)
    planned_epochs = {r.name: r.epochs for r in session.plan.runs}
    trainer = ScriptedTrainer(clock, session, slowdown)
    runs = train_runs(session, Path("data"), PodiumConfig(), trainer)
    assert trainer.started == trainer.finished and len(runs) == len(trainer.started) >= 1  # none killed
    used = session.elapsed + session.plan.finish_s  # the finish is reserved
    assert used <= 1.05 * session.plan.budget_s
    if slowdown == 1.0:
        assert used >= 0.9 * session.plan.budget_s * TARGET
    else:  # slower than probed: later runs were shortened or dropped, and the notes say so
        trained = {s.name: int(s.note.rsplit(", ", 1)[1].split()[0]) for s in session.steps}
        assert any(trained.get(n, 0) < e for n, e in planned_epochs.items() if n != "run-1")
        assert session.notes and all("re-plan" in n or "not started" in n for n in session.notes)
        assert session.speed.epoch == pytest.approx(slowdown)


def test_an_auto_run_schedule_ends_at_its_planned_steps_with_a_short_warmup() -> None:
    base = PodiumConfig()
    cfg = run_config(base, Candidate("tf_efficientnet_lite0", 128), 3, 3, "auto-run-1")
    assert (cfg.model.name, cfg.model.img_size, cfg.train.epochs, cfg.cv.folds) == (
        "tf_efficientnet_lite0", (128,), 3, 3)
    assert cfg.train.schedule == "linear" and cfg.train.min_lr_ratio == 0.0
    assert cfg.train.warmup_epochs <= 0.1 * 3 and cfg.finetune.freeze_epochs < cfg.train.epochs
    assert cfg.run.name == "auto-run-1" and cfg.run.report is False
    updates = 10
    total = cfg.train.epochs * updates
    factor = warmup_cosine(round(cfg.train.warmup_epochs * updates), total, cfg.train.min_lr_ratio,
                           shape=cfg.train.schedule)
    assert factor(total - 1) < 0.05 and factor(total) == 0.0  # linear decay to zero at the planned step count
    assert run_config(base, Candidate("m", 64), 12, 5, "x").train.patience > 0  # long runs may stop early
    again = run_config(base, Candidate("tf_efficientnet_lite0", 128), 3, 3, "auto-run-2", repeat=1)
    assert again.train.seed != cfg.train.seed and again.cv == cfg.cv  # another seed, the same folds


def test_the_cost_model_counts_folds_tta_test_and_pseudo_rows() -> None:
    t = TIMINGS["small@128"]
    plain = run_cost(t, Workload(1000, 0, 1), 5)
    assert run_cost(t, Workload(1000, 300, 1), 5).fixed_s > plain.fixed_s  # test prediction
    assert run_cost(t, Workload(1000, 0, 2), 5).fixed_s > plain.fixed_s  # TTA views
    assert run_cost(t, Workload(1000, 0, 1), 5, extra_train=300).epoch_s > plain.epoch_s  # pseudo rows train too
    assert run_cost(t, Workload(1000, 0, 1), 5, new_size=False).fixed_s < plain.fixed_s  # the cache is filled


def test_head_only_epochs_cost_less_and_the_clock_counts_them_so() -> None:
    cost = Cost(10, 6, 3, freeze=1)
    assert cost.total(3) == 10 + 3 * 6 - 3 and cost.total(2) == 10 + 2 * 6  # a third of the epochs at most
    assert [cost.epoch(k, 3) for k in (1, 2, 3)] == [3, 6, 6] and cost.scaled(Speed(1, 2)).total(3) == 10 + 36 - 6
    frozen = run_cost(TIMINGS["mid@160"], dataclasses.replace(WORK, freeze_epochs=1), 2)
    assert frozen.frozen_saving_s > 0 and frozen.total(6) < run_cost(TIMINGS["mid@160"], WORK, 2).total(6)
    clock = FakeClock()
    plan = make_plan(TIMINGS, LADDER, dataclasses.replace(WORK, freeze_epochs=1), 1800, 10.0, "cpu", "test")
    session = Session(plan, clock, clock.now() - 10.0, say=lambda _: None)
    train_runs(session, Path("data"), PodiumConfig(), ScriptedTrainer(clock, session))
    assert session.speed.epoch == pytest.approx(1.0)  # head-only epochs ran as predicted: nothing to calibrate


@pytest.mark.parametrize("budget", range(150, 420, 15))
def test_a_one_run_plan_fills_its_time_with_the_best_candidate_and_epochs(budget: int) -> None:
    plan = make_plan(TIMINGS, LADDER, WORK, budget, 10.0, "cpu", "test")
    if len(plan.runs) != 1:
        return
    usable = usable_s(budget, 10.0, 1)
    assert plan.finish_s == FINISH_MIN_S  # nothing to blend: the blend's reserve trains the run
    best = max((run_cost(TIMINGS[c.name], WORK, plan.folds).total(e) for c in LADDER for e in
                range(CLIMB_EPOCHS, MAX_EPOCHS + 1) if run_cost(TIMINGS[c.name], WORK, plan.folds).total(e) <= usable),
               default=0.0)
    (run,) = plan.runs
    assert run.predicted_s <= usable + 1e-6
    assert run.predicted_s >= min(FILL * usable, best) - 1e-6  # as full as any candidate could make it


def test_sizes_between_two_probed_sizes_are_timed_by_their_pixels() -> None:
    timings = {"lite@128": StepTiming(0.01, 0.002, 0.001, 0.1), "other@144": StepTiming(1, 1, 1, 1),
               "lite@160": StepTiming(0.02, 0.004, 0.001, 0.1)}
    between = with_sizes_between(timings)
    assert list(between) == ["lite@128", "lite@136", "lite@144", "lite@152", "other@144", "lite@160"]
    w = (144 ** 2 - 128 ** 2) / (160 ** 2 - 128 ** 2)
    assert between["lite@144"].train_s == pytest.approx(0.01 + w * 0.01) and between["lite@160"] == timings["lite@160"]
    sizes = [between[f"lite@{s}"].train_s for s in (128, 136, 144, 152, 160)]
    assert sizes == sorted(sizes)


def test_a_one_run_plan_may_take_a_size_between_two_probed_ones() -> None:
    ladder = (Candidate("small", 128), Candidate("small", 160))
    timings = {"small@128": StepTiming(0.004, 0.001, 0.0, 0.5), "small@160": StepTiming(0.0065, 0.0016, 0.0, 0.5)}
    work = Workload(1000, 0, 1)
    fills = {}
    for budget in range(60, 200, 5):
        plan = make_plan(timings, ladder, work, budget, 0.0, "cpu", "test")
        if len(plan.runs) == 1:
            (run,) = plan.runs
            fills[budget] = run.predicted_s / usable_s(budget, 0.0, 1)
            assert run.candidate.name in plan.timings and run.predicted_s <= usable_s(budget, 0.0, 1) + 1e-6
            if run.candidate.size not in (128, 160):
                assert "interpolated" in run.why
    assert len(fills) > 5 and min(fills.values()) >= FILL - 1e-6


@pytest.mark.parametrize("slowdown", [1.3, 2.0])
def test_a_one_run_plan_slower_than_probed_ends_its_folds_early_within_the_budget(slowdown: float) -> None:
    clock = FakeClock()
    plan = make_plan(TIMINGS, LADDER, WORK, 300, 10.0, "cpu", "test")
    assert len(plan.runs) == 1
    session = Session(plan, clock, clock.now() - 10.0, say=lambda _: None)
    trainer = ScriptedTrainer(clock, session, slowdown)
    train_runs(session, Path("data"), PodiumConfig(), trainer)
    assert trainer.finished == ["run-1"] and trainer.stopped  # the run completed, with its folds cut short
    assert session.elapsed + session.plan.finish_s <= 1.05 * plan.budget_s
    assert any("stopped after epoch" in n for n in session.notes)


def test_a_one_run_plan_faster_than_probed_adds_a_short_run_with_the_time_left() -> None:
    clock = FakeClock()
    plan = make_plan(TIMINGS, LADDER, WORK, 300, 10.0, "cpu", "test")
    assert len(plan.runs) == 1
    session = Session(plan, clock, clock.now() - 10.0, say=lambda _: None)
    trainer = ScriptedTrainer(clock, session, 0.5)
    train_runs(session, Path("data"), PodiumConfig(), trainer)
    assert trainer.finished[0] == "run-1" and len(trainer.finished) >= 2  # the time saved trained another run
    added = session.plan.runs[1]
    assert added.epochs >= MIN_EPOCHS and "time to spare" in added.why
    assert session.elapsed + session.plan.finish_s <= 1.05 * plan.budget_s
