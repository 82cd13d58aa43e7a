"""The plan of ``podium auto``, pure functions of the probe's timings, the data's size and the budget: which runs
(candidate, epochs) on how many shared folds, and what each is predicted to cost.

    run_cost    a run's predicted seconds as fixed + epochs x per-epoch: folds x (model setup, epochs of training
                and validation, OOF with TTA), test prediction with TTA, the decoded-image cache of a new size
    make_plan   the folds, then the runs: as many as leave each room to climb the ladder (a pseudo-label run last
                when there is a test set and at least three runs), each the largest candidate its share affords,
                then ``fit_epochs`` fills the budget's target
    refill      the last run swapped for the candidate and epochs that fill the time best, when its epochs (a fifth
                of a small budget each) leave too much of it unused
    replan      the same for the runs not started yet, on the time left and the measured/predicted ratio

The plan ends at ``TARGET`` of the budget, with ``finish_s`` kept for the blend (a plan of one run has none), the
report and the summary: a calibration error of the probe then still lands between 90% and 105% of the budget once
re-planning corrects it. Head-only epochs (``finetune.freeze_epochs``) are priced apart: they cost about a third of a
full epoch on CPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from podium.core.errors import PodiumError
from podium.engine.timing import StepTiming
from podium.multirun.auto.clock import minutes, shown_budget
from podium.multirun.auto.ladder import Candidate

TARGET = 0.95  # the plan's predicted end, as a fraction of the budget
MIN_EPOCHS = 2  # fewer is no honest run: one epoch is all warm-up and decay
CLIMB_EPOCHS = 3  # a larger candidate is chosen only when its share affords this many epochs
MAX_EPOCHS = 12
MAX_RUNS = 4
RUN_OVERHEAD_S = 4.0  # reading the folder (its checks cached), the run folder, scoring the OOF rows
EPOCH_OVERHEAD_S = 0.2  # best.pt, last.pt and the logs after every epoch of a fold
FINISH_SHARE, FINISH_MIN_S, FINISH_MAX_S = 0.05, 10.0, 30.0  # the blend (8 s predicted), the reports, the summary
FOLD_CHOICES = (5, 4, 3, 2)
# A head-only epoch (backbone frozen: its forward only, no backward through it) trains an image in about this many
# times the seconds the probe's evaluation takes: measured 1.56x on tf_efficientnet_lite0 at 160 px (potato, 2-core
# CPU). Counting it as a full epoch over-predicted a 3-epoch run by 12%, and the plan then left a fifth of a 5-minute
# budget unused.
FROZEN_TRAIN_PER_EVAL = 1.6
SIZE_STEP = 8  # px between the sizes the fill may interpolate (the Lites take any multiple of 8)
FILL = 0.93  # a one-run plan that fills less of its time than this tries the other candidates' best epochs


@dataclass(frozen=True)
class Workload:
    """What the runs work on: training and test images, TTA views per prediction, whether a pseudo-label run may
    close the plan (there is a test set to label)."""

    n_train: int
    n_test: int
    views: int = 1
    pseudo: bool = False
    freeze_epochs: int = 0  # head-only epochs the config asks for (each run has at most a third of its epochs so)


@dataclass(frozen=True)
class Cost:
    """A run's predicted seconds: ``fixed_s`` plus ``epoch_s`` per epoch (of every fold), less ``frozen_saving_s``
    for each of its head-only epochs (``freeze`` at most, a third of the epochs at most: ``execute.run_config``)."""

    fixed_s: float
    epoch_s: float
    frozen_saving_s: float = 0.0
    freeze: int = 0

    def head_only(self, epochs: int) -> int:
        """How many of ``epochs`` epochs train the head alone."""
        return min(self.freeze, epochs // 3)

    def epoch(self, k: int, epochs: int) -> float:
        """Predicted seconds of epoch ``k`` (1-based, of every fold) in a run of ``epochs`` epochs."""
        return self.epoch_s - (self.frozen_saving_s if k <= self.head_only(epochs) else 0.0)

    def total(self, epochs: int) -> float:
        """Seconds for ``epochs`` epochs (0: the run is dropped, nothing)."""
        if epochs <= 0:
            return 0.0
        return self.fixed_s + epochs * self.epoch_s - self.head_only(epochs) * self.frozen_saving_s

    def scaled(self, speed: Speed) -> Cost:
        """The cost at the measured ``speed`` (measured/predicted seconds of each part)."""
        return Cost(self.fixed_s * speed.fixed, self.epoch_s * speed.epoch, self.frozen_saving_s * speed.epoch,
                    self.freeze)


@dataclass(frozen=True)
class Speed:
    """Measured / predicted seconds so far: of the runs' fixed parts (setup, OOF, test prediction, cache, scoring)
    and of their epochs, calibrated apart because the probe times the epochs' steps far better than the rest."""

    fixed: float = 1.0
    epoch: float = 1.0

    def inverse(self) -> Speed:
        """The speed that undoes this one."""
        return Speed(1 / self.fixed, 1 / self.epoch)


def run_cost(t: StepTiming, w: Workload, folds: int, extra_train: int = 0, new_size: bool = True) -> Cost:
    """Predicted cost of one run of a candidate timed as ``t``; ``extra_train``: train-only rows (pseudo-labels) in
    every fold, ``new_size``: the decoded-image cache of its input size is filled by this run."""
    val = w.n_train / folds
    train = w.n_train - val + extra_train
    epoch = folds * (train * t.train_s + val * t.eval_s + EPOCH_OVERHEAD_S)
    saving = folds * train * max(0.0, t.train_s - FROZEN_TRAIN_PER_EVAL * t.eval_s)
    oof_views = w.views + (1 if w.views > 1 else 0)  # with TTA, the plain OOF is predicted too
    fixed = (RUN_OVERHEAD_S + folds * (t.setup_s + val * t.eval_s * oof_views)
             + folds * w.n_test * t.eval_s * w.views + (w.n_train + w.n_test) * t.decode_s * new_size)
    return Cost(fixed, epoch, saving, w.freeze_epochs)


@dataclass(frozen=True)
class PlannedRun:
    """One run of the plan: its candidate, epochs, cost (at the probe's speed) and why it is there."""

    name: str
    candidate: Candidate
    epochs: int
    cost: Cost
    why: str
    pseudo: bool = False

    @property
    def predicted_s(self) -> float:
        """Predicted seconds at the probe's speed."""
        return self.cost.total(self.epochs)


@dataclass(frozen=True)
class AutoPlan:
    """The runs on ``folds`` shared folds, the time already spent (probe) and kept for the finish."""

    budget_s: float
    elapsed_s: float
    folds: int
    runs: tuple[PlannedRun, ...]
    device: str
    ladder: str
    workload: Workload
    timings: dict[str, StepTiming] = field(default_factory=dict)
    finish_s: float = FINISH_MIN_S

    @property
    def predicted_end_s(self) -> float:
        """When the plan is predicted to end, from the start: spent + runs + finish."""
        return self.elapsed_s + sum(r.predicted_s for r in self.runs) + self.finish_s

    def to_dict(self) -> dict:
        """plan.json's content."""
        return {
            "budget_s": self.budget_s, "elapsed_s": self.elapsed_s, "folds": self.folds, "device": self.device,
            "ladder": self.ladder, "target": TARGET, "finish_s": self.finish_s,
            "predicted_end_s": self.predicted_end_s, "workload": dataclasses.asdict(self.workload),
            "runs": [{"name": r.name, "model": r.candidate.model, "size": r.candidate.size, "epochs": r.epochs,
                      "folds": self.folds, "predicted_s": r.predicted_s, "fixed_s": r.cost.fixed_s,
                      "epoch_s": r.cost.epoch_s, "pseudo": r.pseudo, "why": r.why} for r in self.runs],
            "timings": {k: dataclasses.asdict(t) for k, t in self.timings.items()},
        }


def fit_epochs(costs: list[Cost], left_s: float, epochs: list[int]) -> list[int]:
    """Epochs per run (0: dropped) whose costs fit ``left_s``: fewer epochs first where most (a later run on ties),
    down to ``MIN_EPOCHS``, then the last runs dropped; time to spare goes to the runs with the fewest epochs, up to
    ``MAX_EPOCHS``."""
    epochs = list(epochs)

    def total() -> float:
        return sum(c.total(e) for c, e in zip(costs, epochs))

    while total() > left_s and any(epochs):
        shrinkable = [i for i, e in enumerate(epochs) if e > MIN_EPOCHS]
        if shrinkable:
            epochs[max(shrinkable, key=lambda i: (epochs[i], i))] -= 1
        else:
            epochs[max(i for i, e in enumerate(epochs) if e)] = 0
    while True:
        room = left_s - total()
        growable = [i for i, e in enumerate(epochs)
                    if 0 < e < MAX_EPOCHS and costs[i].total(e + 1) - costs[i].total(e) <= room]
        if not growable:
            return epochs
        epochs[min(growable, key=lambda i: (epochs[i], -i))] += 1


def finish_s(budget_s: float, runs: int = 2) -> float:
    """Seconds kept for the finish of a plan of ``runs`` runs: with two or more, the blend (its cross-fitted CV),
    the final report and the summary, a tenth of the budget within ``FINISH_MIN_S`` and ``FINISH_MAX_S``; with one
    there is nothing to blend, and the report and the summary take seconds (2 s on potato): ``FINISH_MIN_S``."""
    if runs <= 1:
        return FINISH_MIN_S
    return min(FINISH_MAX_S, max(FINISH_MIN_S, FINISH_SHARE * budget_s))


def usable_s(budget_s: float, elapsed_s: float, runs: int = 2) -> float:
    """Seconds ``runs`` runs may take: the budget's target less what is spent and the finish."""
    return budget_s * TARGET - elapsed_s - finish_s(budget_s, runs)


def choose_folds(cheapest: StepTiming, w: Workload, usable: float, max_folds: int) -> int:
    """The most folds (at most ``max_folds``) at which two runs of the cheapest candidate climb to ``CLIMB_EPOCHS``;
    else the fewest."""
    choices = [k for k in FOLD_CHOICES if k <= max_folds] or [max_folds]
    for k in choices:
        if 2 * run_cost(cheapest, w, k).total(CLIMB_EPOCHS) <= usable:
            return k
    return choices[-1]


def refuse_small(budget_s: float, elapsed_s: float, cheapest: Candidate, cost: Cost) -> None:
    """Refuse a budget that cannot afford one run of the cheapest candidate at ``MIN_EPOCHS``, in one line with the
    smallest budget that would."""
    need = (elapsed_s + finish_s(budget_s, 1) + cost.total(MIN_EPOCHS)) / TARGET
    if need > budget_s:
        raise PodiumError(f"--budget {shown_budget(budget_s)} is too small for one honest run here ({cheapest.name}, "
                          f"{MIN_EPOCHS} epochs, predicted {minutes(need)} min with the probe and the finish); the "
                          f"smallest budget that works is --budget {shown_budget(need)}.")


def make_plan(timings: dict[str, StepTiming], ladder: tuple[Candidate, ...], w: Workload, budget_s: float,
              elapsed_s: float, device: str, ladder_name: str = "", max_folds: int = 5) -> AutoPlan:
    """The runs that fill the budget (see the module's docstring); refused in one line when it is too small."""
    available = [c for c in ladder if c.name in timings]
    if not available:
        raise PodiumError(f"No candidate of the {ladder_name or device} ladder could be timed on this machine.")
    cheapest = available[0]
    usable = usable_s(budget_s, elapsed_s)  # with a blend; a one-run plan gets the blend's reserve back below
    refuse_small(budget_s, elapsed_s, cheapest, run_cost(timings[cheapest.name], w, min(2, max_folds)))
    folds = choose_folds(timings[cheapest.name], w, usable, max_folds)
    climb = run_cost(timings[cheapest.name], w, folds).total(CLIMB_EPOCHS)
    slots = int(min(MAX_RUNS, max(1, usable // (2 * climb))))
    pseudo = w.pseudo and slots >= 3
    usable = usable_s(budget_s, elapsed_s, slots)  # one run has nothing to blend: more of the budget trains it
    share = usable / slots
    picked = [(c, False) for c in pick_candidates(available, timings, w, folds, share, slots - pseudo)]
    if pseudo:  # retrained at the end on the best result's pseudo-labels; planned as the largest candidate
        picked.append((max((c for c, _ in picked),
                           key=lambda c: run_cost(timings[c.name], w, folds).total(CLIMB_EPOCHS)), True))
    runs = planned_runs(picked, timings, w, folds, share)
    epochs = fit_epochs([r.cost for r in runs], usable, [MIN_EPOCHS] * len(runs))
    runs = [dataclasses.replace(r, epochs=e) for r, e in zip(runs, epochs) if e]
    plan = AutoPlan(budget_s, elapsed_s, folds, tuple(renamed(runs)), device, ladder_name, w, dict(timings),
                    finish_s(budget_s, len(runs)))
    return refill(plan, 0, usable, Speed())


def refill(plan: AutoPlan, started: int, left_s: float, speed: Speed) -> AutoPlan:
    """The plan with its last training run (not started yet) swapped for the candidate and epochs that fill
    ``left_s`` best, when the runs from ``started`` on fill less than ``FILL`` of it: epochs come in steps of a
    fifth of a small budget, so one candidate's best epoch count can leave that much unused. The largest candidate
    that reaches ``FILL`` at ``CLIMB_EPOCHS`` or more wins, else the one that fills most."""
    later = plan.runs[started:]
    trains = [i for i, r in enumerate(later) if not r.pseudo]
    used = sum(r.cost.scaled(speed).total(r.epochs) for r in later)
    if not trains or used >= FILL * left_s:
        return plan
    last = later[trains[-1]]
    others = used - last.cost.scaled(speed).total(last.epochs)
    sizes = {r.candidate.size for r in plan.runs[:started + trains[-1]]}
    first = plan.runs[0].cost.total(CLIMB_EPOCHS) if started + trains[-1] > 0 else 0.0
    options = []
    timings = with_sizes_between(plan.timings)
    for c in ladder_of(dataclasses.replace(plan, timings=timings)):
        base = run_cost(timings[c.name], plan.workload, plan.folds, new_size=c.size not in sizes)
        epochs = fit_epochs([base.scaled(speed)], left_s - others, [CLIMB_EPOCHS])[0]
        if epochs >= CLIMB_EPOCHS and base.total(CLIMB_EPOCHS) >= first:  # the first run stays the cheapest
            options.append((others + base.scaled(speed).total(epochs), c, epochs, base))
    if not options:
        return plan
    filling = [o for o in options if o[0] >= FILL * left_s]
    total, c, epochs, cost = filling[-1] if filling else max(options, key=lambda o: o[0])
    if total <= used:
        return plan
    why = f"{epochs} epochs of it fill the time left best ({total / left_s:.0%})"
    if c.name not in plan.timings:
        why += "; its timing interpolated between the sizes probed around it"
    swapped = dataclasses.replace(last, candidate=c, epochs=epochs, cost=cost, why=why)
    runs = list(plan.runs)
    runs[started + trains[-1]] = swapped
    kept = {k: t for k, t in timings.items() if k in plan.timings or k == c.name}  # ladder order kept
    return dataclasses.replace(plan, runs=tuple(runs), timings=kept)


def with_sizes_between(timings: dict[str, StepTiming]) -> dict[str, StepTiming]:
    """``timings`` with, between two probed sizes of one backbone, every ``SIZE_STEP`` px size in between, each timed
    by interpolating its neighbours' timings in pixels (a convolution's cost grows with them): the fill's finest step
    when a whole epoch more of the next probed size is too much (plant-pathology, 5 minutes: 3 epochs at 144 px
    filled 88%, 4 epochs did not fit, 160 px did not fit)."""
    out: dict[str, StepTiming] = {}
    names = list(timings)
    for i, name in enumerate(names):
        out[name] = timings[name]
        model, lo = name.rsplit("@", 1)[0], int(name.rsplit("@", 1)[1])
        above = [n for n in names[i + 1:] if n.rsplit("@", 1)[0] == model and int(n.rsplit("@", 1)[1]) > lo]
        if not above:
            continue
        hi = int(above[0].rsplit("@", 1)[1])
        for s in range(lo + SIZE_STEP, hi, SIZE_STEP):
            w = (s * s - lo * lo) / (hi * hi - lo * lo)
            a, b = dataclasses.astuple(timings[name]), dataclasses.astuple(timings[above[0]])
            out[f"{model}@{s}"] = StepTiming(*(x + w * (y - x) for x, y in zip(a, b)))
    return out


def pick_candidates(available: list[Candidate], timings: dict[str, StepTiming], w: Workload, folds: int,
                    share: float, count: int) -> list[Candidate]:
    """For each of ``count`` runs, the largest candidate whose run at ``CLIMB_EPOCHS`` fits ``share``, preferring
    one not picked yet (different backbones and sizes blend better); the cheapest when none fits."""
    picked: list[Candidate] = []
    for _ in range(count):
        fits = [c for c in available if run_cost(timings[c.name], w, folds).total(CLIMB_EPOCHS) <= share]
        fresh = [c for c in fits if c not in picked]
        picked.append((fresh or fits or available[:1])[-1])
    return picked


def planned_runs(picked: list[tuple[Candidate, bool]], timings: dict[str, StepTiming], w: Workload, folds: int,
                 share: float) -> list[PlannedRun]:
    """The picked candidates as runs, cheapest first (it calibrates the clock for the others) and the pseudo-label
    run last; the first run at each input size fills its decoded-image cache."""
    def key(item: tuple[Candidate, bool]) -> tuple[bool, float]:
        return item[1], run_cost(timings[item[0].name], w, folds).total(CLIMB_EPOCHS)

    runs, sizes = [], set()
    for c, pseudo in sorted(picked, key=key):
        cost = run_cost(timings[c.name], w, folds, w.n_test if pseudo else 0, c.size not in sizes)
        sizes.add(c.size)
        why = ("pseudo-labels of the best result, retrained with its candidate" if pseudo else
               f"largest candidate whose {CLIMB_EPOCHS} epochs fit a {minutes(share)} min share"
               + ("; first: calibrates the clock" if not runs else ""))
        runs.append(PlannedRun("", c, MIN_EPOCHS, cost, why, pseudo))
    return runs


def renamed(runs: list[PlannedRun], start: int = 1) -> list[PlannedRun]:
    """The runs named in order: run-1, run-2, ... (the pseudo-label run ``pseudo``)."""
    return [dataclasses.replace(r, name="pseudo" if r.pseudo else f"run-{start + i}") for i, r in enumerate(runs)]


def replan(plan: AutoPlan, started: int, left_s: float, speed: Speed, add: bool = True) -> AutoPlan:
    """The plan with the runs from index ``started`` on refitted to ``left_s`` seconds (the time to the target less
    the finish and what the current run still needs) at the measured ``speed``: their epochs shortened or
    lengthened, the last dropped when even ``MIN_EPOCHS`` do not fit, one added (``add``) when all are at
    ``MAX_EPOCHS`` with time to spare. Earlier runs are kept as they are."""
    later = plan.runs[started:]
    epochs = fit_epochs([r.cost.scaled(speed) for r in later], left_s, [r.epochs for r in later])
    kept = [dataclasses.replace(r, epochs=e) for r, e in zip(later, epochs) if e]
    fitted = dataclasses.replace(plan, runs=(*plan.runs[:started], *kept))
    if not add:  # a run is under way: only epochs change until it ends
        return fitted
    return extend(refill(fitted, started, left_s, speed), started, left_s, speed)


def extend(plan: AutoPlan, started: int, left_s: float, speed: Speed) -> AutoPlan:
    """The plan with one more run before the pseudo-label run when the later runs are at ``MAX_EPOCHS`` and the
    time they leave affords another at ``CLIMB_EPOCHS`` (``MIN_EPOCHS`` when no run is left: the ones before took
    less than predicted), the largest candidate that fits, a new one preferred, so that a budget is used rather
    than wasted."""
    later = plan.runs[started:]
    trains = [r for r in plan.runs if not r.pseudo]
    finish = finish_s(plan.budget_s, len(plan.runs) + 1)  # a second run brings the blend's reserve with it
    room = left_s - sum(r.cost.scaled(speed).total(r.epochs) for r in later) - (finish - plan.finish_s)
    if len(trains) >= MAX_RUNS + 2 or any(r.epochs < MAX_EPOCHS for r in later if not r.pseudo):
        return plan
    available = [c for c in ladder_of(plan) if c.name in plan.timings]
    sizes = {r.candidate.size for r in plan.runs}
    costs = {c: run_cost(plan.timings[c.name], plan.workload, plan.folds, new_size=c.size not in sizes).scaled(speed)
             for c in available}
    # with every run done (the probe over-predicted them), a shorter run still uses the time: the blend keeps it only
    # when its honest CV gains
    least = MIN_EPOCHS if not later else CLIMB_EPOCHS
    fits = [c for c in available if costs[c].total(least) <= room]
    if not fits:
        return plan
    fresh = [c for c in fits if c not in {r.candidate for r in trains}]
    c = (fresh or fits)[-1]
    epochs = fit_epochs([costs[c]], room, [least])[0]
    added = PlannedRun(f"run-{len(trains) + 1}", c, epochs, costs[c].scaled(speed.inverse()),
                       "added: the runs before it ended with time to spare")
    pseudo = [r for r in plan.runs if r.pseudo]
    return dataclasses.replace(plan, runs=(*trains, added, *pseudo), finish_s=finish)


def ladder_of(plan: AutoPlan) -> list[Candidate]:
    """The probed candidates in ladder order (the timings keep the probe's order)."""
    return [Candidate(*name.rsplit("@", 1)[:1], int(name.rsplit("@", 1)[1])) for name in plan.timings]


def plan_table(plan: AutoPlan) -> str:
    """The plan as the text table printed before any training: run, candidate, size, epochs, folds, predicted
    minutes, why; then the probe, the finish and the total against the budget."""
    rows = [("run", "model", "size", "epochs", "folds", "pred. min", "why")]
    rows += [(r.name, r.candidate.model, str(r.candidate.size), str(r.epochs), str(plan.folds),
              minutes(r.predicted_s), r.why) for r in plan.runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)) + "  " + row[-1] for row in rows]
    end = plan.predicted_end_s
    lines += [f"probe (spent): {minutes(plan.elapsed_s)} min; blend, report and summary: {minutes(plan.finish_s)} min",
              f"predicted total {minutes(end)} min of the {minutes(plan.budget_s)} min budget "
              f"({end / plan.budget_s:.0%}; re-planned after every epoch)"]
    return "\n".join(line.rstrip() for line in lines)
