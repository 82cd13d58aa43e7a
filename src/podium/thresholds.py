"""Decision thresholds fitted on out-of-fold probabilities: multilabel (one global threshold, or one per class) and
binary (a threshold on the positive class for label submissions).

Multilabel rules are registered in ``THRESHOLD_MODES`` (``predict.threshold_mode``), binary rules in
``BINARY_RULES`` (``predict.binary_threshold``); each takes (targets, probabilities) and returns the fitted threshold
(a float, a per-class list, or None for no threshold). A decoded multilabel row is never empty: a row with no class
at its threshold gets its most likely class, because an empty row scores zero on sample F1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn import metrics as skm

from podium.registry import Registry

GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)

ThresholdRule = Callable[[np.ndarray, np.ndarray], "float | list[float] | None"]
THRESHOLD_MODES: Registry[ThresholdRule] = Registry("threshold mode")
BINARY_RULES: Registry[ThresholdRule] = Registry("binary threshold rule")


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


@THRESHOLD_MODES.register("global")
def global_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """One threshold for every class, the one of a 0.05..0.95 grid maximising sample F1."""
    scores = [sample_f1(y, p, t) for t in GRID]
    return float(GRID[int(np.argmax(scores))])


@THRESHOLD_MODES.register("per_class")
def per_class_sample_f1(y: np.ndarray, p: np.ndarray, rounds: int = 2) -> list[float]:
    """One threshold per class maximising sample F1 of the whole decoded rows: coordinate ascent from the best
    global threshold, each class's threshold searched on the grid with the others fixed (never worse than global)."""
    t = np.full(p.shape[1], global_threshold(y, p))
    best = sample_f1(y, p, t)
    for _ in range(rounds):
        for c in range(p.shape[1]):
            for v in GRID:
                trial = t.copy()
                trial[c] = v
                s = sample_f1(y, p, trial)
                if s > best + 1e-12:
                    best, t = s, trial
    return [float(v) for v in t]


@THRESHOLD_MODES.register("per_class_f1")
def per_class_f1(y: np.ndarray, p: np.ndarray) -> list[float]:
    """One threshold per class maximising that class's own F1 (each column on its own)."""
    out = []
    for c in range(p.shape[1]):
        scores = [skm.f1_score(y[:, c], (p[:, c] >= t).astype(int), zero_division=0) for t in GRID]
        out.append(float(GRID[int(np.argmax(scores))]))
    return out


@BINARY_RULES.register("argmax")
def binary_argmax(y: np.ndarray, p: np.ndarray) -> None:
    """No threshold: the more likely class (0.5)."""
    return None


def _best_binary(y: np.ndarray, p: np.ndarray, metric: Callable[[np.ndarray, np.ndarray], float]) -> float:
    grid = np.unique(np.concatenate([GRID, [0.5]]))
    scores = [metric(y, (p[:, 1] >= t).astype(np.int64)) for t in grid]
    return float(grid[int(np.argmax(scores))])


@BINARY_RULES.register("accuracy")
def binary_accuracy(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold on the positive class's probability that maximises accuracy."""
    return _best_binary(y, p, lambda t, pred: float((t == pred).mean()))


@BINARY_RULES.register("f1")
def binary_f1(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold on the positive class's probability that maximises the positive class's F1."""
    return _best_binary(y, p, lambda t, pred: float(skm.f1_score(t, pred, zero_division=0)))


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
