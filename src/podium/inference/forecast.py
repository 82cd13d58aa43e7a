"""How long predicting N fresh images takes with a run or an ensemble folder, and what to drop to fit a time budget
(a Kaggle notebook reruns on a hidden test set, often ten times the public one, within the same 9 hours).

    forecast               per member: its folds and views, its fold models' loading, its share of the fresh
                           decode (once per cache side) and N images through every fold model and view, from the
                           throughput its run folder measured (``throughput.run_throughput``)
    fit_inference_budget   drops TTA views first, then folds, then the weakest members (by blend weight, then CV
                           score) until the forecast fits; returns the choice as ``podium predict`` takes it
                           (``--tta``, ``--folds``, ``--members``)

The forecast holds for the machine that measured the throughput (its device is named); prediction with several
views is taken as linear in the views (a GPU stacking views runs faster than that, so it errs long there).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from podium.core.errors import PodiumError
from podium.engine.tta import view_names
from podium.inference.throughput import Throughput, run_throughput
from podium.runs.ensemble import Ensemble, open_trained
from podium.runs.run import Run


@dataclass(frozen=True)
class InferenceChoice:
    """Which models predict and how: ``members`` of an ensemble (None: all), ``folds`` of every member (None: each
    one's finished folds), TTA views ``tta`` for every member (None: each one's ``predict.tta``)."""

    members: tuple[str, ...] | None = None
    folds: tuple[int, ...] | None = None
    tta: tuple[str, ...] | None = None

    def predict_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``podium.predict`` (``podium.api.predict``) that make this choice."""
        return {k: v for k, v in (("members", self.members), ("folds", self.folds), ("tta", self.tta))
                if v is not None}

    def cli_args(self) -> str:
        """The ``podium predict`` options that make this choice (empty: every model as trained)."""
        parts = [f"--members {','.join(self.members)}" if self.members is not None else "",
                 f"--folds {','.join(map(str, self.folds))}" if self.folds is not None else "",
                 f"--tta {','.join(self.tta)}" if self.tta is not None else ""]
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class MemberForecast:
    """One member's share: its folds and views (``views``: the view names, ``passes``: views x scales per image and
    fold model), weight and CV score, images per second through all of it, and seconds for loading its fold
    models, decoding the fresh images (0 when an earlier member of the same cache side did) and all together."""

    name: str
    folds: tuple[int, ...]
    views: tuple[str, ...]
    passes: int
    weight: float
    cv_score: float | None
    images_per_s: float
    load_s: float
    decode_s: float
    seconds: float
    source: str


@dataclass(frozen=True)
class Forecast:
    """The forecast of predicting ``n_images`` fresh images with ``path``'s models as ``choice`` says: each member's
    share, the fixed startup (loading every fold model, whatever N), the decode of the fresh images, the total, the
    device the throughput was measured on and notes (a rough source, an unmeasured part)."""

    path: Path
    n_images: int
    choice: InferenceChoice
    members: tuple[MemberForecast, ...]
    device: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def startup_s(self) -> float:
        """Seconds that do not grow with N: building and loading every fold model."""
        return sum(m.load_s for m in self.members)

    @property
    def decode_s(self) -> float:
        """Seconds decoding the fresh images (once per cache side)."""
        return sum(m.decode_s for m in self.members)

    @property
    def total_s(self) -> float:
        """The forecast seconds of the whole prediction (the interpreter's start, a few seconds, not included)."""
        return sum(m.seconds for m in self.members)

    @property
    def rough(self) -> bool:
        """Whether a member's throughput is only the rough fallback of an older run folder."""
        return any(m.source == "rough" for m in self.members)

    def line(self) -> str:
        """The forecast in one line (``podium predict --estimate``'s last line; a summary's)."""
        return (f"{self.n_images} images: {self.total_s / 60:.1f} min ({self.total_s:.0f} s), of which model loading "
                f"{self.startup_s:.1f} s and decoding the fresh images {self.decode_s:.1f} s; measured on "
                f"{self.device}" + (" (rough)" if self.rough else ""))

    def rows(self) -> list[dict[str, Any]]:
        """The table ``podium predict --estimate`` prints: member, folds, views, images/s, minutes."""
        return [{"member": m.name, "folds": len(m.folds), "views": m.passes, "images/s": m.images_per_s,
                 "minutes": m.seconds / 60} for m in self.members]


@dataclass(frozen=True)
class BudgetFit:
    """What ``fit_inference_budget`` chose: the ``choice`` to predict with, its ``forecast``, whether it fits the
    budget (False: even the smallest choice does not) and what was dropped, in order."""

    choice: InferenceChoice
    forecast: Forecast
    fits: bool
    dropped: tuple[str, ...]


@dataclass(frozen=True)
class _Model:
    """A member as the forecast sees it: its name, run folder, folds, views, scales, weight, score, throughput."""

    name: str
    run: Run
    folds: tuple[int, ...]
    views: tuple[str, ...]
    scales: int
    weight: float
    cv_score: float | None
    speed: Throughput


def forecast(path: str | Path, n_images: int, choice: InferenceChoice | None = None) -> Forecast:
    """The seconds ``podium predict --data`` takes to predict ``n_images`` fresh images with the run or ensemble
    folder ``path`` (every model as trained, or as ``choice`` says), from the throughput each member run measured.
    A folder whose runs measured nothing usable is a one-line error saying how to measure it."""
    if n_images < 1:
        raise PodiumError(f"--estimate {n_images}: give the number of images to predict (1 or more).")
    return _forecast(Path(path), _models(path), n_images, choice or InferenceChoice())


def fit_inference_budget(path: str | Path, n_images: int, budget_s: float) -> BudgetFit:
    """The largest choice of ``path``'s models whose forecast for ``n_images`` images fits ``budget_s`` seconds:
    TTA views are dropped first (the last view of the first member's list, down to one), then folds (the last
    common fold, down to one), then members (the smallest weight, then the lowest CV score, down to one)."""
    models = _models(path)
    choice, dropped = InferenceChoice(), []
    result = _forecast(Path(path), models, n_images, choice)
    for step in _reductions(models):
        if result.total_s <= budget_s:
            break
        choice, what = step(choice)
        dropped.append(what)
        result = _forecast(Path(path), models, n_images, choice)
    return BudgetFit(choice, result, result.total_s <= budget_s, tuple(dropped))


def _reductions(models: list[_Model]) -> list:
    """The steps of ``fit_inference_budget`` in order, each ``choice -> (smaller choice, what it dropped)``."""
    views = list(view_names(models[0].views))
    folds = sorted(set.intersection(*(set(m.folds) for m in models)))
    order = sorted(models, key=lambda m: (m.weight, m.cv_score if m.cv_score is not None else float("-inf")))
    steps = [lambda c, n=n: (replace(c, tta=tuple(views[:n])), f"view {views[n]}")
             for n in range(len(views) - 1, 0, -1)]
    if any(len(m.folds) > len(folds) for m in models):  # every member keeps the folds they share
        steps.append(lambda c: (replace(c, folds=tuple(folds)), "folds not shared by every member"))
    steps += [lambda c, n=n: (replace(c, folds=tuple(folds[:n])), f"fold {folds[n]}")
              for n in range(len(folds) - 1, 0, -1)]
    names = [m.name for m in models]
    for weak in order[:-1]:
        names = [n for n in names if n != weak.name]
        steps.append(lambda c, kept=tuple(names), name=weak.name: (replace(c, members=kept), f"member {name}"))
    return steps


def _models(path: str | Path) -> list[_Model]:
    """The folder's models: a run alone (weight 1) or each member run of an ensemble, with their throughput."""
    owner = open_trained(path, "predict with")
    if isinstance(owner, Ensemble):
        entries = [(Run.open(owner.member_dir(e), writer=False), float(e["weight"]))
                   for e in owner.members["members"]]
    else:
        entries = [(owner, 1.0)]
    return [_model(run, weight) for run, weight in entries]


def _model(run: Run, weight: float) -> _Model:
    """One member run as the forecast sees it."""
    cfg = run.config
    score = run.metrics.get("cv_score") if run.finished else None
    return _Model(run.path.name, run, tuple(run.folds_done()), tuple(view_names(cfg.predict.tta)),
                  len(cfg.predict.scales), weight, score, run_throughput(run))


def _forecast(path: Path, models: list[_Model], n: int, choice: InferenceChoice) -> Forecast:
    """Each chosen member's share of predicting ``n`` images, the fresh decode counted once per cache side."""
    if choice.members is not None:
        unknown = sorted(set(choice.members) - {m.name for m in models})
        if unknown:
            raise PodiumError(f"{path} has no member {unknown[0]}; its members are "
                              f"{', '.join(m.name for m in models)}.")
    chosen = [m for m in models if choice.members is None or m.name in choice.members]
    for m in chosen:
        if choice.folds is not None and (not choice.folds or set(choice.folds) - set(m.folds)):
            raise PodiumError(f"--folds {','.join(map(str, choice.folds))}: {m.name} has finished folds "
                              f"{list(m.folds)}; name some of them.")
    out, sides = [], set()
    for m in chosen:
        folds = tuple(f for f in m.folds if choice.folds is None or f in choice.folds)
        views = tuple(view_names(choice.tta)) if choice.tta is not None else m.views
        passes = len(views) * m.scales
        per_image = len(folds) * (m.speed.read_s + m.speed.base_s + passes * m.speed.view_s)
        shared = m.speed.side in sides and m.speed.side > 0  # this store was filled by an earlier member
        sides.add(m.speed.side)
        decode, load = 0.0 if shared else n * m.speed.decode_s, len(folds) * m.speed.load_s
        out.append(MemberForecast(m.name, folds, views, passes, m.weight, m.cv_score,
                                  1 / per_image if per_image > 0 else float("inf"), load, decode,
                                  load + decode + n * per_image, m.speed.source))
    return Forecast(path, n, choice, tuple(out), models[0].speed.device, _notes(models))


def _notes(models: list[_Model]) -> tuple[str, ...]:
    """What the reader of a forecast should know about its sources."""
    notes = []
    rough = [m.name for m in models if m.speed.source == "rough"]
    if rough:
        notes.append(f"rough: {', '.join(rough)} recorded only its whole test prediction's time (a run trained before "
                     "podium measured prediction); run `podium predict RUN` once to measure it per fold and view.")
    single = [m.name for m in models if m.speed.source == "one batch"]
    if single:
        notes.append(f"{', '.join(single)}: measured on one batch per fold model (its warm-up counted per image), so "
                     "the forecast errs long; `podium predict RUN --images DIR` on a few batches' worth measures the "
                     "steady rate.")
    oof = [m.name for m in models if m.speed.source == "oof"]
    if oof:
        notes.append(f"{', '.join(oof)}: speed from the OOF passes (no test set); model loading not measured.")
    devices = sorted({m.speed.device for m in models})
    if len(devices) > 1:
        notes.append(f"members were measured on different devices ({', '.join(devices)}).")
    return tuple(notes)
