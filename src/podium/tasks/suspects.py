"""Suspect labels: the training images whose given label their own out-of-fold predictions contradict.

Confident learning (Northcutt et al., JAIR 2021) through cleanlab: the per-class thresholds of the confident joint
decide which labels are issues (``find_label_issues``, pruned by noise rate), and a label quality score in [0, 1]
ranks them, worst first. The probabilities must be out-of-fold: a model that saw an image's label cannot doubt it.

Each task kind asks for its own rule (the task objects in ``podium.tasks.task`` call one of these):
- single-label (binary, multiclass): cleanlab's rule; the suggested label is the most probable class;
- ordinal grades: the same issues, but the quality is one minus the expected grade distance between the given grade
  and the OOF distribution (scaled to [0, 1]), so a neighbouring grade (the expected confusion of a graded scale)
  ranks below a far one;
- multilabel: cleanlab's multilabel variant (one-vs-rest per class); the suggested label set is every class whose
  OOF probability reaches the threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # the tasks call the rules below: a runtime import would be circular
    from podium.tasks.base import Task


@dataclass(frozen=True)
class LabelIssues:
    """Per image: whether its label is a suspect, a quality score in [0, 1] (low = likely wrong) and the suggested
    targets (class indices (N,) for single-label tasks, a 0/1 matrix (N, C) for multilabel)."""

    suspect: np.ndarray
    quality: np.ndarray
    suggested: np.ndarray


def _clean_probs(probs: np.ndarray) -> np.ndarray:
    """Rows that sum to one, as cleanlab expects of single-label probabilities (fold averages can drift by 1e-7)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None)
    return p / p.sum(axis=1, keepdims=True)


def _enough(labels: np.ndarray, num_classes: int) -> bool:
    """cleanlab's confident joint needs every class present at least twice to estimate its threshold."""
    counts = np.bincount(labels, minlength=num_classes)
    return bool((counts >= 2).all())


def single_label_issues(targets: np.ndarray, probs: np.ndarray) -> LabelIssues:
    """Label issues of class-index targets (N,) given OOF class probabilities (N, C)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels, p = np.asarray(targets, dtype=np.int64), _clean_probs(probs)
    quality = get_label_quality_scores(labels, p, method="self_confidence")
    if _enough(labels, p.shape[1]):
        suspect = find_label_issues(labels, p, filter_by="prune_by_noise_rate", n_jobs=1)
    else:  # too few images of a class for confident learning: flag only labels the models call near impossible
        suspect = quality < 0.05
    return LabelIssues(np.asarray(suspect, dtype=bool), np.asarray(quality, dtype=np.float64), p.argmax(axis=1))


def ordinal_issues(targets: np.ndarray, probs: np.ndarray) -> LabelIssues:
    """Label issues of grades 0..K-1: cleanlab's issues, ranked by the expected distance to the given grade."""
    base = single_label_issues(targets, probs)
    p = _clean_probs(probs)
    k = p.shape[1]
    distance = np.abs(np.arange(k)[None, :] - np.asarray(targets)[:, None])
    quality = 1.0 - (p * distance).sum(axis=1) / max(k - 1, 1)
    suggested = np.clip(np.rint(p @ np.arange(k)), 0, k - 1).astype(np.int64)  # the expected grade, rounded
    return LabelIssues(base.suspect, quality, suggested)


def multilabel_issues(targets: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray = 0.5) -> LabelIssues:
    """Label issues of a 0/1 target matrix (N, C) given OOF per-class sigmoid probabilities (N, C)."""
    from cleanlab.multilabel_classification.filter import find_label_issues
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    y = np.asarray(targets).astype(np.int64)
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1 - 1e-12)
    labels = [list(np.flatnonzero(row)) for row in y]
    quality = get_label_quality_scores(labels, p)
    present = y.sum(axis=0)
    if ((present >= 2) & (len(y) - present >= 2)).all():
        suspect = find_label_issues(labels, p, filter_by="prune_by_noise_rate", n_jobs=1)
    else:
        suspect = quality < 0.05
    suggested = (p >= np.asarray(threshold)).astype(np.int64)
    return LabelIssues(np.asarray(suspect, dtype=bool), np.asarray(quality, dtype=np.float64), suggested)


SUSPECT_COLUMNS = ("id", "fold", "given", "suggested", "quality", "source")


def suspect_table(ids: Sequence[str], folds: np.ndarray, targets: np.ndarray, probs: np.ndarray, task: Task,
                  classes: Sequence[str], decisions: Mapping[str, Any],
                  conflicts: Sequence[Mapping[str, Any]] = ()) -> pd.DataFrame:
    """suspects.csv's rows: the OOF label issues, worst first (``source`` oof), then the members of duplicate
    clusters whose labels disagree (``source`` duplicate conflict: no model judged them, so no quality or
    suggestion)."""
    issues = task.label_issues(targets, probs, decisions)
    rows = np.flatnonzero(issues.suspect)
    rows = rows[np.argsort(issues.quality[rows], kind="stable")]
    given = task.label_strings(targets[rows], classes)
    suggested = task.label_strings(issues.suggested[rows], classes)
    table = pd.DataFrame({"id": np.asarray(ids, dtype=str)[rows], "fold": np.asarray(folds)[rows], "given": given,
                          "suggested": suggested, "quality": np.round(issues.quality[rows], 6), "source": "oof"})
    clash = [{"id": str(i), "fold": -1, "given": lab, "suggested": "", "quality": np.nan,
              "source": f"duplicate conflict (cluster {c['cluster']})"}
             for c in conflicts for i, lab in zip(c["ids"], c["labels"])]
    return pd.concat([table, pd.DataFrame(clash, columns=SUSPECT_COLUMNS)], ignore_index=True) if clash else table
