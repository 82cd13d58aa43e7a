"""The honest CV score: the score of the decision the submission uses, cross-fitted.

A run's submission decodes its probabilities with decisions fitted on every OOF row (ordinal cut points, multilabel
thresholds, a binary threshold: ``Task.fit_decisions``). Scored on those same rows, a fitted decision looks better
than it is (in-sample); scored without it (argmax, 0.5), the run looks worse than what it submits (plain). The
honest score fits the decision on the other parts' rows and decodes each part's rows with it, then scores the
assembled predictions with ``cv.metric`` (``honest_score``): what an unseen row gets.

The parts are the folds; rows validated in one fold only (a holdout, ``cv.train_folds=0``) are cross-fitted on
``inner_folds``: seeded chunks that keep each duplicate cluster in one chunk (``fit_parts``). Blends of runs fit
their weights on the same parts (``podium.inference.blends.cross_fit``) and pass each part's blended rows here, so
weights and decision are fitted on the same other rows.

A metric that reads no labels (ROC AUC, log loss, a user's metric of probabilities) is not moved by a decision, and
a task with no fitted decision (argmax, 0.5) decodes plainly: then the honest score is the plain one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from podium.config import PredictConfig
from podium.tasks.metrics import fit_decisions, get_metric
from podium.tasks.task import Task

INNER_FOLDS = 5  # the chunks a single validated fold (a holdout) is cross-fitted on
# (part number, boolean mask of the part's rows) -> (probabilities of the other rows, probabilities of the part's
# rows): a blend passes each part's rows blended with the weights fitted on the other rows
PartProbs = Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]]


def inner_folds(n: int, k: int = INNER_FOLDS, seed: int = 0, groups: np.ndarray | None = None) -> np.ndarray:
    """``k`` seeded chunks of ``n`` rows (at most ``n``), to cross-fit on the rows of one holdout fold; rows of one
    group (a duplicate cluster) share a chunk, so nothing is scored on a copy of a row it was fitted on. The chunks
    depend on how the rows are grouped, not on the group ids (groups are numbered by their first row), so a run and
    an ensemble of it cut its rows alike."""
    if groups is None:
        return np.random.default_rng(seed).permutation(n) % max(1, min(k, n))
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # each group's number in the order of its first row
    chunk = np.random.default_rng(seed).permutation(len(first)) % max(1, min(k, len(first)))
    return chunk[order][inverse]


def fit_parts(folds: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """The part of each row a cross-fit holds out in turn: its fold, or with a single validated fold its
    ``inner_folds`` chunk (``groups``: each row's duplicate cluster or group)."""
    folds = np.asarray(folds)
    return folds if len(np.unique(folds)) >= 2 else inner_folds(len(folds), groups=groups)


def parts_note(folds: np.ndarray, parts: np.ndarray) -> str:
    """What the parts are, for metrics.json: ``5 folds`` or ``5 seeded chunks of the validated fold``."""
    n = len(np.unique(parts))
    return f"{n} folds" if len(np.unique(folds)) >= 2 else f"{n} seeded chunks of the validated fold"


@dataclass(frozen=True)
class HonestScore:
    """``cv_score``: the primary metric of the rows decoded with decisions cross-fitted on ``parts``; ``plain``: of
    the plain decoding (argmax, 0.5); ``in_sample``: with the decisions fitted on every row; ``cross_fit``: which
    decisions were cross-fitted, on what, and each part's (None when nothing was: the score is the plain one)."""

    cv_score: float
    plain: float
    in_sample: float
    cross_fit: dict[str, Any] | None = None

    def fields(self) -> dict[str, Any]:
        """The metrics.json keys: ``cv_score``, ``cv_score_plain``, ``cv_score_in_sample``, ``cross_fit``."""
        return {"cv_score": self.cv_score, "cv_score_plain": self.plain, "cv_score_in_sample": self.in_sample,
                "cross_fit": self.cross_fit}

    @classmethod
    def from_fields(cls, metrics: dict[str, Any]) -> HonestScore:
        """Read back from metrics.json (one written before these keys: its cv_score alone)."""
        cv = metrics["cv_score"]
        return cls(cv, metrics.get("cv_score_plain", cv), metrics.get("cv_score_in_sample", cv),
                   metrics.get("cross_fit"))

    def beside(self) -> str:
        """What the log and the report print after the score: which decisions were cross-fitted on what, with the
        in-sample and plain scores (empty when nothing was cross-fitted)."""
        if self.cross_fit is None:
            return ""
        what = ", ".join(self.cross_fit["decisions"]).replace("_", " ")
        return (f"{what} cross-fitted on {self.cross_fit['on']}; in-sample {self.in_sample:.4f}, plain "
                f"{self.plain:.4f}")


def honest_score(task: Task, y: np.ndarray, p: np.ndarray, parts: np.ndarray, predict: PredictConfig,
                 decisions: dict[str, Any] | None = None, *, on: str = "", part_probs: PartProbs | None = None
                 ) -> HonestScore:
    """The honest, plain and in-sample scores of probabilities ``p`` (N, C) against ``y`` by the task's primary
    metric. ``decisions``: those fitted on every row (fitted here when None); ``on`` names ``parts`` in
    metrics.json (``parts_note``); ``part_probs``: each part's fitting and scored probabilities where they are not
    ``p``'s rows (a blend's)."""
    y, p = np.asarray(y), np.asarray(p)
    metric = get_metric(task.primary)
    plain = metric(y, p, 0.5)
    decisions = fit_decisions(task, y, p, predict) if decisions is None else decisions
    if not decisions or metric.labels is None:  # nothing fitted, or nothing a decision moves
        return HonestScore(plain, plain, plain)
    in_sample = decided_score(task, y, p, decisions)
    if len(np.unique(parts)) < 2:  # a single row: no other row to fit on
        return HonestScore(in_sample, plain, in_sample)
    pred, per_part = cross_fit_decisions(task, y, p, parts, predict, part_probs)
    cross = {"decisions": sorted(decisions), "on": on or f"{len(per_part)} parts", "per_part": per_part}
    return HonestScore(float(metric.labels(y, pred, p.shape[1])), plain, in_sample, cross)


def decided_score(task: Task, y: np.ndarray, p: np.ndarray, decisions: dict[str, Any]) -> float:
    """The primary metric of ``p``'s rows decoded with ``decisions`` (``Task.predict``): the score of what is
    submitted, in-sample when the decisions were fitted on these rows; a metric that reads no labels scores ``p``."""
    metric = get_metric(task.primary)
    p = np.asarray(p)
    if metric.labels is None:
        return metric(y, p, decisions.get("threshold", 0.5))
    return float(metric.labels(np.asarray(y), task.predict(p, decisions), p.shape[1]))


def cross_fit_decisions(task: Task, y: np.ndarray, p: np.ndarray, parts: np.ndarray, predict: PredictConfig,
                        part_probs: PartProbs | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Each part's rows decoded (``Task.predict``) with the decisions fitted (``fit_decisions``, for the primary
    metric) on the other parts' rows; the assembled predicted targets (in the rows' order) and each part's
    decisions."""
    rows, decoded, per_part = [], [], []
    for f in np.unique(parts):
        out = parts == f
        fit_p, out_p = part_probs(int(f), out) if part_probs is not None else (p[~out], p[out])
        d = fit_decisions(task, y[~out], fit_p, predict)
        rows.append(np.flatnonzero(out))
        decoded.append(np.asarray(task.predict(out_p, d)))
        per_part.append({"part": int(f), **d})
    pred = np.concatenate(decoded)[np.argsort(np.concatenate(rows), kind="stable")]
    return pred, per_part
