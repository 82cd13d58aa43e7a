"""Decision thresholds fitted on out-of-fold probabilities: multilabel (one global threshold, or one per class) and
binary (a threshold on the positive class for label submissions).

Multilabel rules are registered in ``THRESHOLD_MODES`` (``predict.threshold_mode``), binary rules in
``BINARY_RULES`` (``predict.binary_threshold``); each takes (targets, probabilities) and returns the fitted threshold
(a float, a per-class list, or None for no threshold). A decoded multilabel row is never empty: a row with no class
at its threshold gets its most likely class, because an empty row scores zero on sample F1.

``DecisionView`` is what a report shows of fitted decisions (``Task.decision_view``): the rule's own metric as each
decision moves with the others kept, so a flat optimum (robust) is told from a sharp one (fitted to OOF noise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn import metrics as skm

from podium.core.registry import Registry

GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)

# (targets, probabilities, objective=None) -> threshold(s); ``objective(targets, decoded targets)`` is the metric
# the rule maximises (higher is better; ``cv.metric`` through ``podium.tasks.metrics.fit_decisions``), None: its own.
ThresholdRule = Callable[..., "float | list[float] | None"]
Objective = Callable[[np.ndarray, np.ndarray], float]
THRESHOLD_MODES: Registry[ThresholdRule] = Registry("threshold mode")
BINARY_RULES: Registry[ThresholdRule] = Registry("binary threshold rule")
# The metric each fitted binary rule maximises, of (targets, 0/1 predictions).
BINARY_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda t, pred: float((t == pred).mean()),
    "f1": lambda t, pred: float(skm.f1_score(t, pred, zero_division=0)),
}


@dataclass(frozen=True)
class DecisionCurve:
    """One decision moved along ``values`` with every other one kept: the rule's ``metric`` at each value
    (``scores``), the value in use (``chosen``) and the plain decoding's (``plain``: 0.5, a grade midpoint)."""

    parameter: str
    metric: str
    values: np.ndarray
    scores: np.ndarray
    chosen: float
    plain: float | None = None


@dataclass(frozen=True)
class DecisionView:
    """What a report shows of a task's fitted decisions (``name``: "threshold", "cut points"): a curve per
    decision, a table where they are one per class, and where they cut one continuous score (an ordinal score, a
    binary probability) that score of every row (``score_name``, ``score``) with the cuts in use and the plain
    decoding's (``plain_cuts``)."""

    name: str
    curves: tuple[DecisionCurve, ...]
    table: tuple[dict[str, Any], ...] = ()
    score_name: str = ""
    score: np.ndarray | None = None
    cuts: tuple[float, ...] = ()
    plain_cuts: tuple[float, ...] = ()


def decode_multilabel(probs: np.ndarray, threshold: float | np.ndarray | list[float]) -> np.ndarray:
    """0/1 label matrix: every class at or above its threshold, and the most likely class where none is.

    ``threshold`` is one number or one per class. A submission row with no label scores zero on sample F1, so a row
    is never left empty.
    """
    probs = np.asarray(probs)
    out = (probs >= np.asarray(threshold, dtype=np.float64)).astype(np.int64)
    empty = out.sum(axis=1) == 0
    out[empty, probs[empty].argmax(axis=1)] = 1
    return out


def sample_f1(y: np.ndarray, p: np.ndarray, threshold: float | np.ndarray | list[float]) -> float:
    """Mean over rows of the F1 of the label set decoded at ``threshold``."""
    return float(skm.f1_score(y, decode_multilabel(p, threshold), average="samples", zero_division=0))


def _sample_f1_of(y: np.ndarray, pred: np.ndarray) -> float:
    return float(skm.f1_score(y, pred, average="samples", zero_division=0))


def _decoded(objective: Objective | None) -> Callable[[np.ndarray, np.ndarray, Any], float]:
    """``(y, p, threshold) -> score`` of the rows decoded at ``threshold`` (default objective: sample F1)."""
    obj = objective or _sample_f1_of
    return lambda y, p, t: obj(y, decode_multilabel(p, t))


@THRESHOLD_MODES.register("global")
def global_threshold(y: np.ndarray, p: np.ndarray, objective: Objective | None = None) -> float:
    """One threshold for every class, the one of a 0.05..0.95 grid maximising ``objective`` (sample F1)."""
    at = _decoded(objective)
    scores = [at(y, p, t) for t in GRID]
    return float(GRID[int(np.argmax(scores))])


@THRESHOLD_MODES.register("per_class")
def per_class_sample_f1(y: np.ndarray, p: np.ndarray, objective: Objective | None = None, rounds: int = 2
                        ) -> list[float]:
    """One threshold per class maximising ``objective`` (sample F1) of the whole decoded rows: coordinate ascent
    from the best global threshold, each class's threshold searched on the grid with the others fixed (never worse
    than global)."""
    at = _decoded(objective)
    t = np.full(p.shape[1], global_threshold(y, p, objective))
    best = at(y, p, t)
    for _ in range(rounds):
        for c in range(p.shape[1]):
            for v in GRID:
                trial = t.copy()
                trial[c] = v
                s = at(y, p, trial)
                if s > best + 1e-12:
                    best, t = s, trial
    return [float(v) for v in t]


@THRESHOLD_MODES.register("per_class_f1")
def per_class_f1(y: np.ndarray, p: np.ndarray, objective: Objective | None = None) -> list[float]:
    """One threshold per class maximising that class's own F1 (each column on its own; ``objective`` unused)."""
    out = []
    for c in range(p.shape[1]):
        scores = [skm.f1_score(y[:, c], (p[:, c] >= t).astype(int), zero_division=0) for t in GRID]
        out.append(float(GRID[int(np.argmax(scores))]))
    return out


@BINARY_RULES.register("argmax")
def binary_argmax(y: np.ndarray, p: np.ndarray, objective: Objective | None = None) -> None:
    """No threshold: the more likely class (0.5)."""
    return None


def _best_binary(y: np.ndarray, p: np.ndarray, metric: Callable[[np.ndarray, np.ndarray], float]) -> float:
    grid = np.unique(np.concatenate([GRID, [0.5]]))
    scores = [metric(y, (p[:, 1] >= t).astype(np.int64)) for t in grid]
    return float(grid[int(np.argmax(scores))])


@BINARY_RULES.register("accuracy")
def binary_accuracy(y: np.ndarray, p: np.ndarray, objective: Objective | None = None) -> float:
    """The threshold on the positive class's probability that maximises accuracy."""
    return _best_binary(y, p, BINARY_METRICS["accuracy"])


@BINARY_RULES.register("f1")
def binary_f1(y: np.ndarray, p: np.ndarray, objective: Objective | None = None) -> float:
    """The threshold on the positive class's probability that maximises the positive class's F1."""
    return _best_binary(y, p, BINARY_METRICS["f1"])


@BINARY_RULES.register("metric")
def binary_metric(y: np.ndarray, p: np.ndarray, objective: Objective | None = None) -> float:
    """The threshold on the positive class's probability that maximises ``cv.metric`` (of the decoded labels;
    accuracy when the metric does not read labels, such as ROC AUC)."""
    return _best_binary(y, p, objective or BINARY_METRICS["accuracy"])


def multilabel_report(y: np.ndarray, p: np.ndarray, threshold: float | list[float]) -> dict[str, float]:
    """Sample F1 at 0.5, at the best global threshold and at the decisions' threshold(s), on the same rows."""
    return {"sample_f1_at_0.5": sample_f1(y, p, 0.5), "sample_f1_global": sample_f1(y, p, global_threshold(y, p)),
            "sample_f1_fitted": sample_f1(y, p, threshold)}


def binary_report(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy and F1 of the positive class at 0.5 and at the fitted threshold."""
    out = {}
    for name, t in (("at_0.5", 0.5), ("fitted", threshold)):
        pred = (p[:, 1] >= t).astype(np.int64)
        out[f"accuracy_{name}"] = float((pred == y).mean())
        out[f"f1_{name}"] = float(skm.f1_score(y, pred, zero_division=0))
    return out


def binary_view(y: np.ndarray, p: np.ndarray, threshold: float, rule: str, positive: str) -> DecisionView:
    """The fitted rule's metric (``predict.binary_threshold``) against the threshold on p(``positive``), and that
    probability of every row with the threshold in use."""
    metric = rule if rule in BINARY_METRICS else "accuracy"  # a rule that fits nothing has no metric of its own
    grid = np.unique(np.concatenate([GRID, [0.5, threshold]]))
    scores = np.array([BINARY_METRICS[metric](y, (p[:, 1] >= t).astype(np.int64)) for t in grid])
    curve = DecisionCurve(f"threshold on p({positive})", metric, grid, scores, threshold, 0.5)
    return DecisionView("threshold", (curve,), score_name=f"p({positive})", score=p[:, 1], cuts=(threshold,),
                        plain_cuts=(0.5,))


def multilabel_view(y: np.ndarray, p: np.ndarray, threshold: float | list[float], mode: str,
                    classes: Sequence[str], max_curves: int = 12) -> DecisionView:
    """Sample F1 against one global threshold; with one threshold per class, per class (the first ``max_curves``)
    the metric its mode fits (``per_class_f1``: the class's own F1, else sample F1 of the whole rows) as that
    class's threshold moves with the others kept, and a table of every class's threshold and F1."""
    if np.ndim(threshold) == 0:
        scores = np.array([sample_f1(y, p, t) for t in GRID])
        curve = DecisionCurve("threshold (every class)", "sample_f1", GRID, scores, float(threshold), 0.5)
        return DecisionView("threshold", (curve,))
    t = np.asarray(threshold, dtype=np.float64)
    own = mode == "per_class_f1"
    curves, rows = [], []
    for c, name in enumerate(classes):
        def f1_at(v: float, c: int = c) -> float:  # the class's column on its own, no row filled
            return float(skm.f1_score(y[:, c], (p[:, c] >= v).astype(np.int64), zero_division=0))

        rows.append({"class": name, "threshold": float(t[c]), "positives": int(y[:, c].sum()),
                     "f1 at 0.5": f1_at(0.5), "f1 at threshold": f1_at(float(t[c]))})
        if c < max_curves:
            scores = np.array([f1_at(v) if own else sample_f1(y, p, np.where(np.arange(len(t)) == c, v, t))
                               for v in GRID])
            curves.append(DecisionCurve(f"threshold of {name}", f"f1 of {name}" if own else "sample_f1", GRID,
                                        scores, float(t[c]), 0.5))
    return DecisionView("threshold", tuple(curves), tuple(rows))
