"""Cross-validation folds: a column computed once per run, seeded, stratified, group-aware, saved as ``folds.csv``.

Groups (duplicate clusters united with a user column such as ``patient_id``) never span two folds: a near copy of a
validation image in the training folds would inflate the CV score.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from podium.core.errors import PodiumError, list_some
from podium.tasks.stratifiers import STRATIFIERS
from podium.tasks.task import Task


def make_folds(targets: np.ndarray, task: Task, k: int, seed: int, groups: np.ndarray | None = None,
               classes: tuple[str, ...] = ()) -> np.ndarray:
    """Fold index (0..k-1) of each row: stratified by the task's stratifier and, with ``groups``, every group in one
    fold.

    A class with fewer than k images lands in as many folds as it has images; a class with a single image cannot be
    validated and is an error (see ``check_stratifiable``). A ``k`` the data cannot be split into is a one-line error
    naming the limit (see ``check_fold_count``; ``classes`` names the classes in it).

    The folds depend on nothing else (no global random state): runs of the same data with the same fold settings
    (k, seed, groups, duplicate policy) get identical folds, so their OOF predictions can be blended row by row
    (``podium ensemble`` checks that its members' folds.csv files agree).
    """
    n = len(targets)
    check_fold_count(targets, task, k, groups, classes)
    groups = np.arange(n) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    n_groups = int(groups.max()) + 1
    with warnings.catch_warnings():
        # sklearn warns when a class has fewer than k members; those rows still get folds, in fewer of them.
        warnings.simplefilter("ignore", UserWarning)
        folds = STRATIFIERS.get(task.stratify)(targets, k, seed, groups, n_groups)
    empty = np.flatnonzero(np.bincount(folds[folds >= 0], minlength=k) == 0).tolist()
    if empty:  # not seen with these splitters; a guard, so that no fold trains without validation images
        raise PodiumError(f"cv.folds={k} left fold(s) {empty} without validation images ({n} images, {n_groups} "
                          "groups); lower cv.folds.")
    return folds


def _name(classes: tuple[str, ...], c: int, what: str) -> str:
    return repr(classes[c]) if c < len(classes) else f"{what} {c}"  # the engine may not pass the class names


def check_fold_count(targets: np.ndarray, task: Task, k: int, groups: np.ndarray | None = None,
                     classes: tuple[str, ...] = ()) -> None:
    """Raise one line when the data cannot be split into ``k`` stratified folds, naming the limit and the largest
    usable K.

    The limits: the images; the groups (duplicate clusters and data.group_col each stay in one fold); for a
    single-label task, the largest class (a stratified split needs one class with at least k images; smaller classes
    then sit in fewer folds, as documented in ``make_folds``). A multilabel split is limited by images and groups only
    (a label on fewer than k images is missing from some validation folds); its rarest label is named for context.
    """
    if k < 2:
        raise PodiumError(f"cv.folds must be at least 2, got {k}.")
    targets = np.asarray(targets)
    n = len(targets)
    n_groups = n if groups is None else len(np.unique(np.asarray(groups)))
    limits = [(n, f"there are only {n} training images (cv.folds must be between 2 and the number of images)"),
              (n_groups, f"the images form only {n_groups} groups (duplicate clusters and data.group_col), each kept "
                         "in one fold")]
    context = ""
    if n:  # what the task's stratifier allows of k (the largest class), or context for the message
        limit, context = STRATIFIERS.get(task.stratify).limit(targets, k, lambda c, what: _name(classes, c, what))
        limits += [limit] if limit else []
    bad = [why for limit, why in limits if k > limit]
    if bad:
        usable = min(limit for limit, _ in limits)
        advice = f"use cv.folds={usable} or fewer" if usable >= 2 else "this data cannot be split into folds"
        raise PodiumError(f"cv.folds={k} is too many: {bad[0]}{context}; {advice}.")


def check_stratifiable(targets: np.ndarray, task: Task, classes: tuple[str, ...], ids: list[str], k: int = 0,
                       groups: np.ndarray | None = None) -> None:
    """Stop when a single-label class has one image only: whichever fold validates it, no fold can learn it.

    With ``k`` (cv.folds), also stop when the data cannot be split into k folds (see ``check_fold_count``).
    """
    lonely = [f"{classes[c]!r} (image {ids[row]})"
              for c, row in STRATIFIERS.get(task.stratify).lonely(np.asarray(targets), len(classes))]
    if lonely:
        raise PodiumError(f"{len(lonely)} class(es) have a single training image, which cannot be both trained on "
                          f"and validated: {list_some(lonely)}. Add images of that class, or remove or relabel "
                          "that row.")
    if k:
        check_fold_count(targets, task, k, groups, classes)


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
    if set(folds.tolist()) - {-1} != set(range(k)):  # -1: train-only rows (data.extra)
        raise PodiumError(f"{path} holds folds {sorted(set(folds.tolist()))}, but cv.folds={k}.")
    return folds
