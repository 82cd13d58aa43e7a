"""Fold stratifiers: registered ``Stratifier`` objects that split rows into k folds keeping each class's share, for
the target shapes they declare. A task's stratifier is the first registered one that fits one of its shapes
(``Task.stratify``); ``podium.data.training.folds`` makes and checks the folds with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from podium.core.errors import PodiumError
from podium.core.registry import Registry
from podium.tasks.base import CLASS, MULTIHOT, Task

# (targets, k, seed, group index per row, group count) -> the fold of each row
Split = Callable[[np.ndarray, int, int, np.ndarray, int], np.ndarray]
# (class index, "class" or "label") -> how a message names that class
Namer = Callable[[int, str], str]
# (targets, k, namer) -> (the largest k the targets allow with the reason, or None; context for the message)
Limit = Callable[[np.ndarray, int, Namer], tuple[tuple[int, str] | None, str]]
# (targets, class count) -> (class, its only row) for each class that no fold could both train on and validate
Lonely = Callable[[np.ndarray, int], list[tuple[int, int]]]


def _no_limit(targets: np.ndarray, k: int, name: Namer) -> tuple[tuple[int, str] | None, str]:
    return None, ""


def _none_lonely(targets: np.ndarray, num_classes: int) -> list[tuple[int, int]]:
    return []


@dataclass(frozen=True)
class Stratifier:
    """A registered fold stratifier. ``split`` assigns the folds (calling the stratifier does the same) of targets of
    the ``shapes`` it declares; ``limit`` is what the targets themselves allow of k (beyond the images and the
    groups), and ``lonely`` the classes it cannot both train on and validate (both stop a run before training)."""

    split: Split
    shapes: tuple[str, ...]
    limit: Limit = _no_limit
    lonely: Lonely = _none_lonely

    def __call__(self, targets: np.ndarray, k: int, seed: int, groups: np.ndarray, n_groups: int) -> np.ndarray:
        """The fold (0..k-1) of each row (``split``)."""
        return self.split(targets, k, seed, groups, n_groups)


STRATIFIERS: Registry[Stratifier] = Registry("stratifier")


def stratifier_for(task: Task) -> str:
    """The name of the first registered stratifier that fits one of the task's target shapes."""
    for name in STRATIFIERS:
        if set(STRATIFIERS.get(name).shapes) & set(task.shapes):
            return name
    raise PodiumError(f"No registered fold stratifier fits the {task.name} task's targets ({', '.join(task.shapes)}).")


def _assign(splits: Iterator[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    folds = np.full(n, -1, dtype=np.int64)
    for fold, (_, val) in enumerate(splits):
        folds[val] = fold
    return folds


def by_class(targets: np.ndarray, k: int, seed: int, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Class-index targets: StratifiedKFold, or StratifiedGroupKFold when rows form groups."""
    n = len(targets)
    if n_groups == n:  # no groups: the plain splitter, so folds match runs made before groups existed
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        return _assign(splitter.split(np.zeros((n, 1)), targets), n)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return _assign(splitter.split(np.zeros((n, 1)), targets, groups), n)


def _largest_class(targets: np.ndarray, k: int, name: Namer) -> tuple[tuple[int, str] | None, str]:
    """A stratified split needs one class with at least k images (smaller classes then sit in fewer folds)."""
    counts = np.bincount(targets)
    n = len(targets)
    big, small = int(np.argmax(counts)), int(np.argmin(np.where(counts > 0, counts, n + 1)))
    most, least = int(counts[big]), int(counts[small])
    others = "like every class" if most == least else f"the smallest, {name(small, 'class')}, {least}"
    return (most, f"a stratified split needs a class with at least {k} images, and the largest, "
                  f"{name(big, 'class')}, has {most} ({others})"), ""


def _single_images(targets: np.ndarray, num_classes: int) -> list[tuple[int, int]]:
    """Classes of one image: whichever fold validates it, no fold can learn it."""
    counts = np.bincount(targets, minlength=num_classes)
    return [(int(c), int(np.flatnonzero(targets == c)[0])) for c in np.flatnonzero(counts == 1)]


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


def _rarest_label(targets: np.ndarray, k: int, name: Namer) -> tuple[tuple[int, str] | None, str]:
    """No limit of its own (a label on fewer than k images is missing from some validation folds); the rarest label
    is named for context."""
    counts = targets.sum(axis=0)
    rare = int(np.argmin(counts))
    return None, f"; the rarest label, {name(rare, 'label')}, is on {int(counts[rare])} images"


STRATIFIERS.register("class")(Stratifier(by_class, (CLASS,), _largest_class, _single_images))
STRATIFIERS.register("iterative")(Stratifier(iterative, (MULTIHOT,), _rarest_label))
