"""Training the plan of ``podium auto`` against the clock.

Each run is an ordinary ``pipeline.train`` with the plan's candidate, epochs and folds, and a learning-rate schedule
that ends at its planned step count: linear decay to zero ("Budgeted Training", Li et al., ICLR 2020), its warm-up
``WARMUP_FRACTION`` of the epochs at most. After every epoch of every fold (``pipeline.train``'s ``on_epoch``) the
measured seconds are compared with the predicted ones and the runs not started yet are re-planned: shortened,
lengthened with time saved (a faster machine, early stopping) or dropped. A run that has started is never stopped,
so every run is a complete run folder; a run is started only when its predicted time fits what is left.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podium.config import PodiumConfig
from podium.engine.fold import EpochHook
from podium.multirun.auto.clock import Clock, minutes
from podium.multirun.auto.ladder import Candidate
from podium.multirun.auto.plan import TARGET, AutoPlan, Cost, PlannedRun, Speed, replan
from podium.runs.run import Run
from podium.validation import validate

WARMUP_FRACTION = 0.1  # the warm-up's longest share of a run's epochs
PATIENCE_FROM = 8  # runs of this many epochs or more stop a fold after PATIENCE epochs without a gain
PATIENCE = 3

# Trains one run: (data folder, checked config, epoch hook) -> the finished Run (pipeline.train; a script in tests).
Trainer = Callable[[Path, PodiumConfig, EpochHook], Run]


def run_config(base: PodiumConfig, candidate: Candidate, epochs: int, folds: int, name: str,
               pseudo: str = "", repeat: int = 0) -> PodiumConfig:
    """``base`` (the user's config and overrides) with a planned run's candidate, epochs, folds and schedule: linear
    decay to zero at the last planned update, a warm-up (and head-only epochs) scaled to the epochs; ``pseudo``: the
    run or ensemble folder whose test predictions it learns from too; ``repeat``: how many earlier runs trained
    the same candidate (each repeat another training seed, on the same folds, so the blend gains from it)."""
    tc, ft = base.train, base.finetune
    train = dataclasses.replace(
        tc, epochs=epochs, schedule="linear", min_lr_ratio=0.0, seed=tc.seed + 1000 * repeat,
        warmup_epochs=round(min(tc.warmup_epochs, WARMUP_FRACTION * epochs), 3),
        patience=tc.patience or (PATIENCE if epochs >= PATIENCE_FROM else 0))
    return validate(dataclasses.replace(
        base, model=dataclasses.replace(base.model, name=candidate.model, img_size=(candidate.size,)),
        train=train, finetune=dataclasses.replace(ft, freeze_epochs=min(ft.freeze_epochs, epochs // 3)),
        cv=dataclasses.replace(base.cv, folds=folds, train_folds=()),
        data=dataclasses.replace(base.data, pseudo=pseudo) if pseudo else base.data,
        run=dataclasses.replace(base.run, name=name, report=False)))


def run_left(cost: Cost, epochs: int, folds: int, fold: int, epoch: int) -> float:
    """Seconds a run of ``epochs`` epochs x ``folds`` folds at ``cost`` still needs after ``epoch`` (1-based) of
    ``fold``: the epochs left in this fold and the later ones, and the fixed part (setup, OOF, test) of the folds not
    finished."""
    per_fold = [cost.epoch(k, epochs) / folds for k in range(1, epochs + 1)]
    left = sum(per_fold[epoch:]) + (folds - fold - 1) * sum(per_fold)
    return left + cost.fixed_s * (folds - fold) / folds


def affordable(cost: Cost, epochs: int, folds: int, fold: int, epoch: int, left_s: float) -> int:
    """The most epochs (at least ``epoch``, at most ``epochs``) that ``fold`` and each later fold may train within
    ``left_s`` seconds, after ``epoch`` epochs of ``fold``."""
    per_fold = [cost.epoch(k, epochs) / folds for k in range(1, epochs + 1)]
    fixed = cost.fixed_s * (folds - fold) / folds
    for e in range(epochs, epoch, -1):
        if sum(per_fold[epoch:e]) + (folds - fold - 1) * sum(per_fold[:e]) + fixed <= left_s:
            return e
    return epoch


@dataclass
class Step:
    """One step of an auto run, for the summary: what it was, its predicted and actual seconds, its folder."""

    name: str
    kind: str  # probe, run, blend, pseudo, report
    predicted_s: float
    actual_s: float = 0.0
    folder: str = ""
    score: float | None = None
    note: str = ""


@dataclass
class Session:
    """An auto run under way: its clock and start, the plan as re-planned so far, the steps done, the measured and
    predicted seconds of the work done (their ratio calibrates every later prediction) and the re-plan notes."""

    plan: AutoPlan
    clock: Clock
    start: float
    say: Callable[[str], None] = print
    steps: list[Step] = field(default_factory=list)
    fixed_pred: float = 0.0
    fixed_actual: float = 0.0
    epochs_pred: float = 0.0
    epochs_actual: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def elapsed(self) -> float:
        """Seconds since the start."""
        return self.clock.now() - self.start

    @property
    def speed(self) -> Speed:
        """Measured / predicted seconds of the epochs trained so far and of the finished runs' fixed parts (1 before
        any)."""
        epoch = self.epochs_actual / self.epochs_pred if self.epochs_pred > 1e-9 else 1.0
        fixed = self.fixed_actual / self.fixed_pred if self.fixed_pred > 1e-9 else 1.0
        return Speed(fixed, epoch)

    @property
    def ratio(self) -> float:
        """Measured / predicted seconds of all the work done; 1 before any."""
        pred, actual = self.fixed_pred + self.epochs_pred, self.fixed_actual + self.epochs_actual
        return actual / pred if pred > 1e-9 else 1.0

    def left_for_runs(self, current_left: float = 0.0) -> float:
        """Seconds the runs not started yet may take: to the budget's target, less the finish and ``current_left``
        (what the run under way is predicted to need still)."""
        return self.plan.budget_s * TARGET - self.elapsed - self.plan.finish_s - current_left

    def fits(self, seconds: float, reserve: float | None = None) -> bool:
        """Whether a step predicted at ``seconds`` (already calibrated) ends, with ``reserve`` after it (default: the
        plan's finish), within the budget: the check before anything starts, which keeps the hard limit."""
        reserve = self.plan.finish_s if reserve is None else reserve
        return self.elapsed + seconds + reserve <= self.plan.budget_s

    def replan(self, started: int, current_left: float, why: str) -> None:
        """Refit the runs from index ``started`` on to the time left (a run is added only between runs, with no
        run under way: ``current_left`` 0); a change is printed and noted."""
        before = {r.name: r.epochs for r in self.plan.runs[started:]}
        self.plan = replan(self.plan, started, self.left_for_runs(current_left), self.speed, add=current_left == 0)
        after = {r.name: r.epochs for r in self.plan.runs[started:]}
        if before != after:
            changes = ", ".join([*(f"{n} {e} -> {after[n]} epochs" if n in after else f"{n} dropped"
                                   for n, e in before.items() if after.get(n) != e),
                                 *(f"{n} added ({e} epochs)" for n, e in after.items() if n not in before)])
            speed = self.speed
            note = (f"re-plan after {why} (measured/predicted: epochs {speed.epoch:.2f}x, rest {speed.fixed:.2f}x): "
                    f"{changes}")
            self.notes.append(note)
            self.say(note)


def train_runs(session: Session, data_dir: Path, base: PodiumConfig, trainer: Trainer) -> list[Run]:
    """Train the plan's runs (all but the pseudo-label run) in order, re-planning the later ones after every epoch;
    a run whose calibrated prediction no longer fits is not started."""
    runs: list[Run] = []
    index = 0
    while index < len(session.plan.runs) and not session.plan.runs[index].pseudo:
        planned = session.plan.runs[index]
        predicted = planned.cost.scaled(session.speed).total(planned.epochs)
        if not session.fits(predicted):
            session.notes.append(f"{planned.name} not started: {minutes(predicted)} min would pass the budget")
            session.plan = dataclasses.replace(session.plan, runs=session.plan.runs[:index])
            break
        runs.append(train_one(session, index, planned, data_dir, base, trainer))
        index += 1
        session.replan(index, 0.0, f"{planned.name}")
    return runs


def train_one(session: Session, index: int, planned: PlannedRun, data_dir: Path, base: PodiumConfig,
              trainer: Trainer, pseudo: str = "") -> Run:
    """Train the plan's run ``index`` to the end, calibrating and re-planning the later runs after each of its
    epochs (``index`` -1: a run after the plan, nothing to re-plan)."""
    folds, t0 = session.plan.folds, session.clock.now()
    predicted = planned.cost.scaled(session.speed).total(planned.epochs)
    session.say(f"{planned.name}: {planned.candidate.name}, {planned.epochs} epochs x {folds} folds, predicted "
                f"{minutes(predicted)} min ({minutes(session.elapsed)} of {minutes(session.plan.budget_s)} min used)")

    def on_epoch(fold: int, row: dict[str, Any]) -> bool:
        epoch = int(row.get("epoch", planned.epochs))
        session.epochs_pred += planned.cost.epoch(epoch, planned.epochs) / folds
        session.epochs_actual += float(row.get("wall_s", row.get("train_s", 0.0)))
        current_left = run_left(planned.cost.scaled(session.speed), planned.epochs, folds, fold, epoch)
        if index >= 0:  # -1: the last step (pseudo-labels), with no later run to re-plan
            session.replan(index + 1, current_left, f"{planned.name} fold {fold} epoch {epoch}")
        # The hard limit: a run is never killed, but when its calibrated rest would pass the budget, this fold and
        # the later ones get the epochs that fit, the same for each; this fold ends here when it has them, as early
        # stopping would (best checkpoint kept, the stop in its log). Not on the session's first epoch: it holds the
        # head-only epoch, the loader's start and the first validation, and would calibrate nothing but those.
        if session.epochs_pred <= planned.cost.epoch(1, planned.epochs) / folds + 1e-9 or epoch >= planned.epochs:
            return False
        left = session.plan.budget_s - session.elapsed - session.plan.finish_s
        fits = affordable(planned.cost.scaled(session.speed), planned.epochs, folds, fold, epoch, left)
        if epoch >= fits:
            session.notes.append(f"{planned.name} fold {fold} stopped after epoch {epoch} of {planned.epochs}: the "
                                 f"rest would pass the budget (measured/predicted {session.speed.epoch:.2f}x)")
        return epoch >= fits

    repeat = sum(r.candidate == planned.candidate for r in session.plan.runs[:max(index, 0)])
    cfg = run_config(base, planned.candidate, planned.epochs, folds, f"auto-{planned.name}", pseudo, repeat)
    epochs_before = session.epochs_actual
    run = trainer(data_dir, cfg, on_epoch)
    actual = session.clock.now() - t0
    # the epochs are counted as trained (early stopping saves time that is no sign of a faster machine)
    session.fixed_pred += planned.cost.fixed_s
    session.fixed_actual += max(0.0, actual - (session.epochs_actual - epochs_before))
    session.steps.append(Step(planned.name, "pseudo" if pseudo else "run", predicted, actual, str(run.path),
                              run.metrics.get("cv_score"), f"{planned.candidate.name}, {planned.epochs} epochs"))
    return run
