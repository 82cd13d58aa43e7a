"""Blends of several runs' predictions: each is a registered ``Blend`` (``BLENDS``) that combines the members'
probabilities with one weight per member and, when it is ``fitted``, fits those weights on out-of-fold labels.

A fitted blend must not leak: ``cross_fit`` scores it with weights fitted on the other folds only (the honest OOF
score), and the final weights, used on the test set, are fitted on every OOF row. ``weights`` fits non-negative
weights summing to 1 by greedy hill climbing with replacement (Caruana et al., 2004, "Ensemble selection from
libraries of models"): it maximises the task's primary metric directly, whatever its shape (AUC, accuracy, QWK),
where a gradient method would need a smooth stand-in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from podium.core.registry import Registry
from podium.tasks.crossfit import fit_parts
from podium.tasks.crossfit import inner_folds as inner_folds  # the holdout chunks, also named here
from podium.tasks.metrics import get_metric
from podium.tasks.task import Task

# (members' probabilities, one weight per member, task) -> blended probabilities (N, C)
Combine = Callable[[list[np.ndarray], np.ndarray, Task], np.ndarray]
# (task, targets, members' probabilities) -> one non-negative weight per member, summing to 1
Fit = Callable[[Task, np.ndarray, list[np.ndarray]], np.ndarray]


def equal_weights(task: Task, y: np.ndarray, members: list[np.ndarray]) -> np.ndarray:
    """The same weight for every member (nothing is fitted)."""
    return np.full(len(members), 1.0 / len(members))


def prob_mean(members: list[np.ndarray], w: np.ndarray, task: Task) -> np.ndarray:
    """Weighted mean of the probabilities."""
    return np.tensordot(np.asarray(w, dtype=np.float64), np.stack(members), axes=1)


def logit_mean(members: list[np.ndarray], w: np.ndarray, task: Task) -> np.ndarray:
    """Weighted mean of the task's logits, turned back into probabilities by the task."""
    logits = np.stack([task.logits(p) for p in members])
    return task.from_logits(np.tensordot(np.asarray(w, dtype=np.float64), logits, axes=1))


def rank_mean(members: list[np.ndarray], w: np.ndarray, task: Task) -> np.ndarray:
    """Weighted mean of each class column's ranks, scaled to (0, 1]: for ranking metrics (AUC) when the members'
    probabilities are calibrated differently. Ranks are taken within the rows given (the OOF rows, or the test rows)."""
    ranks = np.stack([rankdata(p, axis=0) / len(p) for p in members])
    return np.tensordot(np.asarray(w, dtype=np.float64), ranks, axes=1)


def primary_score(task: Task, y: np.ndarray, p: np.ndarray) -> float:
    """The task's primary metric (``cv.metric``, the one weights are fitted for) as a higher-is-better key."""
    metric = get_metric(task.primary)
    return metric.key(metric(y, p, 0.5))


def hill_climb(task: Task, y: np.ndarray, members: list[np.ndarray], steps: int = 100, tol: float = 1e-5
               ) -> np.ndarray:
    """Greedy ensemble selection with replacement: start from the best member, then add (again) whichever member
    raises the primary metric of the probability mean most, until no addition gains more than ``tol``."""
    scores = [primary_score(task, y, p) for p in members]
    counts = np.zeros(len(members))
    best = int(np.nanargmax(scores))
    counts[best], total, current = 1, members[best].astype(np.float64), scores[best]
    for _ in range(steps):
        n = counts.sum()
        trial = [primary_score(task, y, (total + p) / (n + 1)) for p in members]
        m = int(np.nanargmax(trial))
        if not trial[m] > current + tol:
            break
        counts[m] += 1
        total, current = total + members[m], trial[m]
    return counts / counts.sum()


@dataclass(frozen=True)
class Blend:
    """A way of blending members: ``combine`` them with weights, from weights that ``fit`` finds. ``fitted`` says
    whether ``fit`` looks at the labels (then its honest score is cross-fitted and ``combine`` must act row by row)."""

    combine: Combine
    fit: Fit = equal_weights
    fitted: bool = False


BLENDS: Registry[Blend] = Registry("blend")
BLENDS.register("mean")(Blend(prob_mean))
BLENDS.register("logit_mean")(Blend(logit_mean))
BLENDS.register("rank_mean")(Blend(rank_mean))
BLENDS.register("weights")(Blend(prob_mean, hill_climb, fitted=True))


@dataclass(frozen=True)
class BlendResult:
    """Final weights (fitted on every OOF row) and blended OOF probabilities, in-sample (final weights) and honest
    (each fold blended with the weights fitted on the other folds), with the per-fold weights and the parts (folds,
    or a holdout's chunks) they were fitted on, on which the blend's decisions are cross-fitted too."""

    weights: np.ndarray
    probs: np.ndarray
    honest: np.ndarray
    fold_weights: dict[int, list[float]]
    parts: np.ndarray  # the part each row was cross-fitted in (its fold, or its holdout chunk)

    def part_probs(self, blend: Blend, task: Task, members: list[np.ndarray]
                   ) -> Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """For cross-fitting a decision on the blend (``podium.tasks.crossfit.honest_score``): part ``f``'s other
        rows blended with the weights fitted on them (what the decision is fitted on) and its own honest rows."""
        def probs(f: int, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if f not in self.fold_weights:  # nothing fitted: the blend of every row
                return self.honest[~out], self.honest[out]
            w = np.asarray(self.fold_weights[f])
            return blend.combine([p[~out] for p in members], w, task), self.honest[out]
        return probs


def cross_fit(blend: Blend, task: Task, y: np.ndarray, members: list[np.ndarray], folds: np.ndarray,
              groups: np.ndarray | None = None) -> BlendResult:
    """Fit ``blend`` on every OOF row (the final weights) and, when it is fitted on labels, once per fold on the
    other folds' rows to blend that fold: the honest OOF probabilities, which no label of their own row has seen.

    Members that validated one fold only (``cv.train_folds=0``: a holdout) have no other fold to fit on: their rows
    are cross-fitted on ``inner_folds`` chunks instead (``fold_weights`` then holds the chunks' weights), keeping
    each of ``groups`` (duplicate clusters) in one chunk."""
    weights = blend.fit(task, y, members)
    probs = blend.combine(members, weights, task)
    parts = fit_parts(folds, groups)
    if not blend.fitted:
        return BlendResult(weights, probs, probs, {}, parts)
    honest, per_fold = np.zeros_like(probs), {}
    for f in np.unique(parts):
        out = parts == f
        w = blend.fit(task, y[~out], [p[~out] for p in members])
        honest[out] = blend.combine([p[out] for p in members], w, task)
        per_fold[int(f)] = [float(v) for v in w]
    return BlendResult(weights, probs, honest, per_fold, parts)
