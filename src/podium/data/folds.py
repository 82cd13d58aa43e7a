"""Cross-validation folds: a column computed once per run, seeded, stratified, group-aware, saved as ``folds.csv``.

Groups (duplicate clusters united with a user column such as ``patient_id``) never span two folds: a near copy of a
validation image in the training folds would inflate the CV score.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from podium.errors import PodiumError, list_some
from podium.registry import Registry
from podium.tasks import Task


def make_folds(targets: np.ndarray, task: Task, k: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Fold index (0..k-1) of each row: stratified by the task's stratifier and, with ``groups``, every group in one
    fold.

    A class with fewer than k images lands in as many folds as it has images; a class with a single image cannot be
    validated and is an error (see ``check_stratifiable``).
    """
    n = len(targets)
    if k < 2 or k > n:
        raise PodiumError(f"cv.folds must be between 2 and the number of images ({n}); got {k}.")
    groups = np.arange(n) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    n_groups = int(groups.max()) + 1
    if k > n_groups:
        raise PodiumError(f"cv.folds={k} but the images form only {n_groups} groups (duplicate clusters and "
                          "data.group_col); lower cv.folds.")
    with warnings.catch_warnings():
        # sklearn warns when a class has fewer than k members; those rows still get folds, in fewer of them.
        warnings.simplefilter("ignore", UserWarning)
        return STRATIFIERS.get(task.stratify)(targets, k, seed, groups, n_groups)


# A stratifier maps (targets, k, seed, group index per row, group count) to the fold of each row; a task names its own.
Stratifier = Callable[[np.ndarray, int, int, np.ndarray, int], np.ndarray]
STRATIFIERS: Registry[Stratifier] = Registry("stratifier")


@STRATIFIERS.register("class")
def by_class(targets: np.ndarray, k: int, seed: int, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Class-index targets: StratifiedKFold, or StratifiedGroupKFold when rows form groups."""
    n = len(targets)
    if n_groups == n:  # no groups: the plain splitter, so folds match runs made before groups existed
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        return _assign(splitter.split(np.zeros((n, 1)), targets), n)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return _assign(splitter.split(np.zeros((n, 1)), targets, groups), n)


@STRATIFIERS.register("iterative")
def iterative(targets: np.ndarray, k: int, seed: int, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """0/1 label matrices: iterative multilabel stratification (of the groups' aggregated labels when rows form
    groups)."""
    n = len(targets)
    splitter = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    if n_groups == n:
        return _assign(splitter.split(np.zeros((n, 1)), targets), n)
    # stratify the groups by their aggregated labels (any member carrying a label), then map back to rows
    agg = np.zeros((n_groups, targets.shape[1]), dtype=np.int64)
    np.maximum.at(agg, groups, targets)
    return _assign(splitter.split(np.zeros((n_groups, 1)), agg), n_groups)[groups]


def _assign(splits: Iterator[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    folds = np.full(n, -1, dtype=np.int64)
    for fold, (_, val) in enumerate(splits):
        folds[val] = fold
    return folds


def check_stratifiable(targets: np.ndarray, task: Task, classes: tuple[str, ...], ids: list[str]) -> None:
    """Stop when a single-label class has one image only: whichever fold validates it, no fold can learn it."""
    if task.multilabel:
        return
    counts = np.bincount(targets, minlength=len(classes))
    lonely = [f"{classes[c]!r} (image {ids[int(np.flatnonzero(targets == c)[0])]})"
              for c in np.flatnonzero(counts == 1)]
    if lonely:
        raise PodiumError(f"{len(lonely)} class(es) have a single training image, which cannot be both trained on and "
                          f"validated: {list_some(lonely)}. Add images of that class, or remove or relabel that row.")


def check_folds(folds: np.ndarray, groups: np.ndarray, ids: list[str], what: str = "folds") -> None:
    """Raise when a group (duplicate cluster or user group) has rows in two folds, naming the ids."""
    df = pd.DataFrame({"g": np.asarray(groups), "f": folds})
    spread = df.groupby("g")["f"].nunique()
    bad = spread.index[spread > 1]
    if len(bad):
        shown = [" + ".join(ids[i] for i in np.flatnonzero(df["g"].to_numpy() == g)[:4]) for g in bad[:5]]
        raise PodiumError(f"{what} split {len(bad)} duplicate cluster(s) or group(s) across folds, which leaks "
                          f"validation images into training: {list_some(shown, 5)}. Delete the folds file to "
                          "recompute group-aware folds.")


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
