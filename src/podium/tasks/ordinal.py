"""Ordinal grades: how a network's outputs code a grade 0..K-1, and the cut points fitted on the continuous score.

Each coding is registered in ``ORDINAL_LOSSES`` under the name of its training loss (``train.loss``; the loss itself
is registered in ``podium.engine.losses.LOSSES``) and owns what the rest of podium asks of it: how many outputs the
model has for K grades and how its logits become per-grade probabilities. Every coding's probabilities keep the
expected grade of its outputs, so the continuous score of a row is ``probs @ [0, 1, ..., K-1]`` whichever coding
produced them: fold averages, OOF files and test files all carry the same score.

- ``cumulative``: K-1 logits for P(grade > k), binary cross-entropy on the cumulative targets (the APTOS "ordinal
  BCE"); probabilities are the differences of the (monotone) cumulative probabilities.
- ``regression``: one output, the grade itself (smooth L1); probabilities put the score's mass on the two grades
  around it (linear interpolation), so argmax is rounding and the expected grade is the clipped score.
- ``ce``: K logits, softmax cross-entropy (the grades' order is known only to the metric and the cut points).

Cut points: the K-1 thresholds on the score that maximise QWK on the out-of-fold rows (``fit_cut_points``), found by
Nelder-Mead from two starts (the midpoints k + 0.5 and the thresholds that reproduce the true grade frequencies),
kept sorted and kept only where they beat the midpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.metrics import cohen_kappa_score

from podium.core.registry import Registry
from podium.tasks.thresholds import DecisionCurve, DecisionView


@dataclass(frozen=True)
class OrdinalCoding:
    """How K grades are coded in a model's outputs. ``needs_order``: only an ordinal task can train with it."""

    name: str
    needs_order: bool = True

    def outputs(self, num_classes: int) -> int:
        """Model outputs for ``num_classes`` grades."""
        raise NotImplementedError

    def probabilities(self, logits: np.ndarray, num_classes: int) -> np.ndarray:
        """Per-grade probabilities (N, K) whose expected grade is the coding's continuous score."""
        raise NotImplementedError

    def evidence(self, outputs: Any, grade: int, num_classes: int) -> Any:
        """What Grad-CAM explains for ``grade``: a differentiable scalar of one image's outputs (a 1-D tensor of
        ``outputs(num_classes)`` values) that rises with the evidence for that grade."""
        raise NotImplementedError


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


class Softmax(OrdinalCoding):
    """K logits, softmax (cross-entropy)."""

    def outputs(self, num_classes: int) -> int:
        """One logit per grade."""
        return num_classes

    def probabilities(self, logits: np.ndarray, num_classes: int) -> np.ndarray:
        """Softmax over the grades."""
        return softmax(logits)

    def evidence(self, outputs: Any, grade: int, num_classes: int) -> Any:
        """The grade's own logit."""
        return outputs[grade]


class Cumulative(OrdinalCoding):
    """K-1 logits for P(grade > k)."""

    def outputs(self, num_classes: int) -> int:
        """One logit per cut between neighbouring grades."""
        return num_classes - 1

    def probabilities(self, logits: np.ndarray, num_classes: int) -> np.ndarray:
        """P(grade = k) = P(grade > k-1) - P(grade > k), with the cumulative made non-increasing first."""
        above = np.minimum.accumulate(_sigmoid(logits), axis=1)  # P(> k) never rises with k
        ones, zeros = np.ones((len(above), 1)), np.zeros((len(above), 1))
        # ``0.0 - x`` rather than ``-x``: a zero difference is written as 0, not -0 (oof.csv, test_predictions.csv)
        return 0.0 - np.diff(np.concatenate([ones, above, zeros], axis=1), axis=1)

    def evidence(self, outputs: Any, grade: int, num_classes: int) -> Any:
        """The cumulative logits that separate ``grade`` from its neighbours: above the cut below it (logit
        ``grade-1``) and not above the cut over it (minus logit ``grade``); one of them at the bottom and top."""
        below = outputs[grade - 1] if grade > 0 else 0.0
        above = outputs[grade] if grade < num_classes - 1 else 0.0
        return below - above


class Regression(OrdinalCoding):
    """One output: the grade."""

    def outputs(self, num_classes: int) -> int:
        """A single output."""
        return 1

    def probabilities(self, logits: np.ndarray, num_classes: int) -> np.ndarray:
        """The score clipped to [0, K-1], its mass split between the two grades around it."""
        s = np.clip(np.asarray(logits, dtype=np.float64).reshape(len(logits), -1)[:, 0], 0, num_classes - 1)
        low = np.minimum(np.floor(s).astype(np.int64), num_classes - 2)
        frac = s - low
        p = np.zeros((len(s), num_classes))
        rows = np.arange(len(s))
        p[rows, low] = 1 - frac
        p[rows, low + 1] += frac
        return p

    def evidence(self, outputs: Any, grade: int, num_classes: int) -> Any:
        """The score pulled towards ``grade``: the score itself for the upper half of the grades, minus it for the
        lower half (its only output is the expected grade)."""
        return outputs[0] if 2 * grade >= num_classes - 1 else -outputs[0]


ORDINAL_LOSSES: Registry[OrdinalCoding] = Registry("ordinal loss")
ORDINAL_LOSSES.register("ce")(Softmax("ce", needs_order=False))
ORDINAL_LOSSES.register("cumulative")(Cumulative("cumulative"))
ORDINAL_LOSSES.register("regression")(Regression("regression"))
# the noise-robust losses (podium.engine.losses) train grades as a softmax over them, like ce
for _robust in ("bitempered", "taylor", "sce", "gce"):
    ORDINAL_LOSSES.register(_robust)(Softmax(_robust, needs_order=False))


def expected_grade(probs: np.ndarray) -> np.ndarray:
    """The continuous score: the expected grade under the per-grade probabilities."""
    probs = np.asarray(probs, dtype=np.float64)
    return probs @ np.arange(probs.shape[1])


def grades(score: np.ndarray, cut_points: np.ndarray | list[float]) -> np.ndarray:
    """Grade of each score: how many cut points it reaches."""
    return np.searchsorted(np.sort(np.asarray(cut_points, dtype=np.float64)), score, side="right").astype(np.int64)


def qwk(y: np.ndarray, pred: np.ndarray, num_classes: int) -> float:
    """Quadratic weighted kappa of predicted grades."""
    return float(cohen_kappa_score(y, pred, weights="quadratic", labels=np.arange(num_classes)))


_qwk = qwk


def fit_cut_points(y: np.ndarray, score: np.ndarray, num_classes: int,
                   objective: Callable[[np.ndarray, np.ndarray], float] | None = None) -> list[float]:
    """The K-1 sorted cut points on ``score`` maximising ``objective(y, grades)`` (higher is better; default QWK)
    against ``y`` (never worse than the midpoints)."""
    y, score = np.asarray(y, dtype=np.int64), np.asarray(score, dtype=np.float64)
    mid = np.arange(num_classes - 1) + 0.5
    freq = np.cumsum(np.bincount(y, minlength=num_classes))[:-1] / max(len(y), 1)
    quantiles = np.quantile(score, np.clip(freq, 0, 1)) if len(score) else mid

    def qwk(y: np.ndarray, pred: np.ndarray, k: int) -> float:  # the objective, QWK unless told otherwise
        return float(objective(y, pred)) if objective is not None else _qwk(y, pred, k)

    best, best_q = mid, qwk(y, grades(score, mid), num_classes)

    def loss(c: np.ndarray) -> float:
        return -qwk(y, grades(score, c), num_classes)

    for start in (mid, quantiles):
        res = minimize(loss, start, method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-6, "maxiter": 400,
                                                                   "initial_simplex": _simplex(start)})
        cuts = np.sort(res.x)
        q = qwk(y, grades(score, cuts), num_classes)
        if q > best_q + 1e-12:
            best, best_q = cuts, q
    return [float(c) for c in np.sort(best)]


def _simplex(start: np.ndarray, step: float = 0.15) -> np.ndarray:
    """Nelder-Mead's first simplex: the start and one vertex per cut moved by ``step`` (QWK is piecewise constant,
    so the default 5% steps could fall between two scores and see no change)."""
    return np.vstack([start, start + step * np.eye(len(start))])


def cut_point_report(y: np.ndarray, probs: np.ndarray, cut_points: list[float]) -> dict[str, float]:
    """QWK and accuracy of argmax, of rounding the expected grade, and of the cut points, on the same rows."""
    k = probs.shape[1]
    score = expected_grade(probs)
    out = {}
    for name, pred in (("argmax", probs.argmax(axis=1)), ("rounded", grades(score, np.arange(k - 1) + 0.5)),
                       ("cut_points", grades(score, cut_points))):
        out[f"qwk_{name}"] = qwk(y, pred, k)
        out[f"accuracy_{name}"] = float((pred == y).mean())
    return out


def cut_point_view(y: np.ndarray, probs: np.ndarray, cut_points: list[float], classes: Sequence[str],
                   steps: int = 41) -> DecisionView:
    """QWK as each cut point moves within 0.5 of its fitted value (the others kept), and the continuous score of
    every row with the cut points in use and the rounding midpoints."""
    k = probs.shape[1]
    score, cuts = expected_grade(probs), np.sort(np.asarray(cut_points, dtype=np.float64))
    curves = []
    for j, cut in enumerate(cuts):
        values = np.unique(np.append(np.linspace(max(cut - 0.5, 0.0), min(cut + 0.5, k - 1.0), steps), cut))
        scores = np.array([qwk(y, grades(score, np.where(np.arange(len(cuts)) == j, v, cuts)), k) for v in values])
        curves.append(DecisionCurve(f"cut point {classes[j]}|{classes[j + 1]}", "qwk", values, scores, float(cut),
                                    j + 0.5))
    return DecisionView("cut points", tuple(curves), score_name="score (expected grade)", score=score,
                        cuts=tuple(float(c) for c in cuts), plain_cuts=tuple(float(c) for c in np.arange(k - 1) + 0.5))
