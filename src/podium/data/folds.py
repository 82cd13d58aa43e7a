"""Cross-validation folds: a column computed once per run, seeded, stratified, and saved as ``folds.csv``."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from sklearn.model_selection import StratifiedKFold

from podium.errors import PodiumError, list_some
from podium.tasks import Task


def make_folds(targets: np.ndarray, task: Task, k: int, seed: int) -> np.ndarray:
    """Fold index (0..k-1) of each row: stratified for single-label, multilabel-stratified for multilabel."""
    n = len(targets)
    if k < 2 or k > n:
        raise PodiumError(f"cv.folds must be between 2 and the number of images ({n}); got {k}.")
    folds = np.full(n, -1, dtype=np.int64)
    x = np.zeros((n, 1))
    splitter = (MultilabelStratifiedKFold if task.multilabel else StratifiedKFold)(
        n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # sklearn warns when a class has fewer than k members; those rows still get folds, in fewer of them.
        warnings.simplefilter("ignore", UserWarning)
        for fold, (_, val) in enumerate(splitter.split(x, targets)):
            folds[val] = fold
    return folds


def read_folds(path: str | Path, ids: list[str], k: int) -> np.ndarray:
    """Folds saved earlier (``id,fold``), checked against this data's ids and fold count."""
    df = pd.read_csv(path, dtype={"id": str})
    if not {"id", "fold"} <= set(df.columns):
        raise PodiumError(f"{path} must have columns id and fold.")
    mapping = dict(zip(df["id"], df["fold"].astype(int)))
    missing = [i for i in ids if i not in mapping]
    if missing or len(mapping) != len(ids):
        extra = sorted(set(mapping) - set(ids))
        raise PodiumError(f"{path} does not match the training data: missing ids {list_some(missing)}, "
                          f"unknown ids {list_some(extra)}. Delete it to recompute the folds, or fix cv.folds_file.")
    folds = np.array([mapping[i] for i in ids], dtype=np.int64)
    if set(folds.tolist()) != set(range(k)):
        raise PodiumError(f"{path} holds folds {sorted(set(folds.tolist()))}, but cv.folds={k}.")
    return folds
