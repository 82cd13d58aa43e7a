"""Predicting a competition folder's test set from read-only inputs (a Kaggle code competition's hidden test set):
the run's (or the ensemble members') checkpoints predict through ``predict_checkpoints``, the members' probabilities
are combined with the ensemble's weights, and the run's (or ensemble's) decisions decode them. Only the output file
and the writable cache (``$PODIUM_CACHE``) are written; the run and data folders may be read-only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from accelerate import Accelerator

from podium.core.errors import PodiumError
from podium.inference.checkpoints import Prediction, predict_checkpoints
from podium.runs.checkpoint import Checkpoint
from podium.tasks.submission import SubmissionFormat, default_format, write_submission
from podium.tasks.task import Task

# (members' probabilities, one weight per member, task) -> blended probabilities; podium.multirun.blends.Blend.combine
Combine = Callable[[list[np.ndarray], np.ndarray, Task], np.ndarray]


@dataclass(frozen=True)
class Member:
    """One model of a prediction: a run's fold checkpoints (averaged) and its weight in the blend."""

    name: str
    checkpoints: list[Checkpoint]
    weight: float = 1.0


def blend_folds(by_fold: list[dict[int, np.ndarray]], combine: Combine, weights: np.ndarray,
                fold_weights: dict[int, list[float]] | None, task: Task) -> dict[int, np.ndarray]:
    """Each fold's blend of the members' fold-k models, with the weights fitted without fold k's rows when the
    blend fitted them per fold (``fold_weights``), else ``weights``; empty unless every member has the same folds.
    What an ensemble's fold-k model is, for honest pseudo-labels."""
    folds = set(by_fold[0]) if by_fold else set()
    if not folds or any(set(b) != folds for b in by_fold):
        return {}
    # a holdout ensemble's fold_weights are keyed by the chunks its one fold was cross-fitted on, not by folds
    fw = fold_weights if fold_weights and set(map(int, fold_weights)) == folds else {}
    fw = {int(k): v for k, v in fw.items()}
    return {f: combine([b[f] for b in by_fold], np.asarray(fw.get(f, weights), dtype=np.float64), task)
            for f in sorted(folds)}


def predict_members(members: list[Member], ids: list[str], paths: list[str], accelerator: Accelerator,
                    decisions: dict, combine: Combine | None = None, views: tuple[str, ...] | None = None,
                    batch_size: int = 0, workers: int = -1, fold_weights: dict[int, list[float]] | None = None
                    ) -> Prediction:
    """Each member's fold-averaged probabilities (its own preprocessing and TTA), combined with the members' weights
    (``combine``; a single member is taken as it is), with ``decisions`` to decode them. ``by_fold``: each fold's
    blend (``blend_folds``, with ``fold_weights``)."""
    if not members:
        raise PodiumError("No model to predict with.")
    preds = [predict_checkpoints(m.checkpoints, ids, paths, accelerator, views, batch_size, workers) for m in members]
    first = preds[0]
    for m, p in zip(members[1:], preds[1:]):
        if (p.classes, p.task.name) != (first.classes, first.task.name):
            raise PodiumError(f"{m.name} predicts other classes or another task than {members[0].name}; they "
                              "cannot be blended.")
    if len(preds) == 1:
        probs, by_fold = first.probs, first.by_fold
    else:
        if combine is None:
            raise PodiumError("Several members need a blend to combine them.")
        weights = np.array([m.weight for m in members], dtype=np.float64)
        probs = combine([p.probs for p in preds], weights, first.task)
        by_fold = blend_folds([p.by_fold for p in preds], combine, weights, fold_weights, first.task)
    return Prediction(list(ids), probs, first.task, list(first.classes), dict(decisions), by_fold)


def write_submission_file(out: str | Path, pred: Prediction, fmt: SubmissionFormat | None) -> pd.DataFrame:
    """The submission in the sample's exact format (ids, order, columns), written atomically to ``out`` and
    validated on disk; without a sample, the task's default format."""
    out = Path(out).expanduser()
    if out.is_dir():
        raise PodiumError(f"--out {out} is a folder; give the submission file, e.g. {out / 'submission.csv'}.")
    fmt = fmt or default_format(pred.task, pred.classes, pred.ids)
    return write_submission(out, fmt, pred.ids, pred.probs, pred.classes, pred.threshold,
                            labels=pred.task.decode(pred.probs, pred.decisions, pred.classes))
