"""Tasks: what the targets are, how logits become probabilities and labels, which loss and metrics apply.

A task is chosen from the data (binary, multiclass, multilabel) or by the user (ordinal), and everything downstream
asks the task rather than branching on its name: which raw labels it accepts and how they become targets, how targets
are counted, shown and weighted, which fold stratifier and submission formats fit it, which decisions (a threshold)
are fitted on out-of-fold predictions and how probabilities are decoded into labels with them.

Single-label targets are class indices (N,); multilabel targets are a 0/1 matrix (N, C). Each task is an instance of
one of the two classes below, registered in ``TASKS``; a new task is one more registered instance (or subclass).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from podium.errors import PodiumError, list_some
from podium.registry import Registry

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Task:
    """How one kind of target is trained, scored and decoded.

    ``loss`` names a registered loss, ``metrics`` registered metrics (``primary`` first in importance), ``stratify``
    a registered fold stratifier (``podium.data.folds.STRATIFIERS``) and ``submissions`` the registered submission
    formats that can express this task's predictions, in the order a sample is matched against them (the first one
    with a default column is used without a sample). ``auto`` says whether ``data.task=auto`` may pick the task;
    ``ordered`` whether the classes are ranked (numeric labels, or ``data.class_order``).
    """

    name: str
    loss: str
    metrics: tuple[str, ...]
    primary: str
    stratify: str
    submissions: tuple[str, ...]
    auto: bool = True
    ordered: bool = False
    multilabel: ClassVar[bool] = False

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Per-class probabilities (N, C) from logits."""
        raise NotImplementedError

    def accepts(self, lists: Sequence[Sequence[str]], classes: Sequence[str]) -> bool:
        """Whether labels of this shape (label strings per row, over ``classes``) suit the task (auto-detection)."""
        raise NotImplementedError

    def from_labels(self, lists: Sequence[Sequence[str]], classes: Sequence[str]) -> np.ndarray:
        """Targets from label strings per row over ``classes``, or a PodiumError saying why they do not fit the task."""
        raise NotImplementedError

    def onehot(self, targets: np.ndarray, num_classes: int) -> np.ndarray:
        """The targets as a 0/1 matrix (N, C)."""
        raise NotImplementedError

    def counts(self, targets: np.ndarray, num_classes: int) -> np.ndarray:
        """Rows carrying each class (C,)."""
        return self.onehot(targets, num_classes).sum(axis=0)

    def label_strings(self, targets: np.ndarray, classes: Sequence[str]) -> list[str]:
        """Human-readable label of each row of ``targets`` (space-joined class names where a row holds several)."""
        return [" ".join(c for c, on in zip(classes, row) if on) for row in self.onehot(targets, len(classes))]

    def balanced_weights(self, targets: np.ndarray, num_classes: int) -> np.ndarray:
        """Class weights for ``train.class_weights=balanced``, in the form the task's loss takes."""
        raise NotImplementedError

    def fit_decisions(self, targets: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, Any]:
        """The decision rule fitted on (out-of-fold) predictions; ``threshold`` < 0 asks for a fitted threshold."""
        return {}

    def predict(self, probs: np.ndarray, decisions: Mapping[str, Any]) -> np.ndarray:
        """Predicted targets, in the same form as the training targets, from probabilities and decisions."""
        raise NotImplementedError

    def decode(self, probs: np.ndarray, decisions: Mapping[str, Any], classes: Sequence[str]) -> list[str]:
        """The predicted label string of each row (see ``label_strings``)."""
        return self.label_strings(self.predict(probs, decisions), classes)


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class SingleLabelTask(Task):
    """One class per row, softmax probabilities, argmax decisions. ``num_classes`` fixes the class count if set."""

    num_classes: int | None = None

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Softmax over the classes."""
        return _softmax(logits)

    def accepts(self, lists: Sequence[Sequence[str]], classes: Sequence[str]) -> bool:
        """One label per row, and the class count the task needs (if any)."""
        return all(len(labels) == 1 for labels in lists) and self.num_classes in (None, len(classes))

    def from_labels(self, lists: Sequence[Sequence[str]], classes: Sequence[str]) -> np.ndarray:
        """Class indices; stops on rows with several or no labels, a single class or the wrong class count."""
        rows = [r + 2 for r, labels in enumerate(lists) if len(labels) != 1]
        if rows:
            raise PodiumError(f"data.task={self.name} needs one label per row, but rows {list_some(rows)} "
                              "have several or none.")
        labels = [labels[0] for labels in lists]
        if len(set(labels)) < 2:
            raise PodiumError(f"The training labels hold a single class ({labels[0]!r}); at least two are needed.")
        if self.num_classes not in (None, len(classes)):
            raise PodiumError(f"data.task={self.name} but there are {len(classes)} classes: "
                              f"{list_some(list(classes))}.")
        index = {c: i for i, c in enumerate(classes)}
        return np.array([index[v] for v in labels], dtype=np.int64)

    def onehot(self, targets: np.ndarray, num_classes: int) -> np.ndarray:
        """One 1 per row, at the row's class."""
        return np.eye(num_classes, dtype=np.int64)[np.asarray(targets, dtype=np.int64)]

    def counts(self, targets: np.ndarray, num_classes: int) -> np.ndarray:
        """Images per class."""
        return np.bincount(np.asarray(targets, dtype=np.int64), minlength=num_classes)

    def label_strings(self, targets: np.ndarray, classes: Sequence[str]) -> list[str]:
        """The class name of each row."""
        return [classes[i] for i in targets]

    def balanced_weights(self, targets: np.ndarray, num_classes: int) -> np.ndarray:
        """Inverse-frequency cross-entropy weights n / (C * count)."""
        return len(targets) / (num_classes * self.counts(targets, num_classes).clip(min=1))

    def predict(self, probs: np.ndarray, decisions: Mapping[str, Any]) -> np.ndarray:
        """The most likely class of each row (no decisions are needed)."""
        return np.asarray(probs).argmax(axis=1)


@dataclass(frozen=True)
class MultiLabelTask(Task):
    """Any set of classes per row, independent sigmoid probabilities, a fitted global threshold."""

    multilabel: ClassVar[bool] = True

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """A sigmoid per class."""
        return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))

    def accepts(self, lists: Sequence[Sequence[str]], classes: Sequence[str]) -> bool:
        """Every shape: several, one or no labels per row."""
        return True

    def from_labels(self, lists: Sequence[Sequence[str]], classes: Sequence[str]) -> np.ndarray:
        """The 0/1 matrix (N, C) of the labels of each row."""
        index = {c: i for i, c in enumerate(classes)}
        y = np.zeros((len(lists), len(classes)), dtype=np.int64)
        for r, labels in enumerate(lists):
            y[r, [index[t] for t in labels]] = 1
        return y

    def onehot(self, targets: np.ndarray, num_classes: int) -> np.ndarray:
        """The targets themselves."""
        return np.asarray(targets, dtype=np.int64)

    def balanced_weights(self, targets: np.ndarray, num_classes: int) -> np.ndarray:
        """BCE positive weights negatives / positives per class, capped at 10."""
        pos = self.counts(targets, num_classes).clip(min=1)
        return np.minimum((len(targets) - pos) / pos, 10.0)

    def fit_decisions(self, targets: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, Any]:
        """``{"threshold": t}``: the given threshold, or with ``threshold`` < 0 the one maximising sample F1."""
        if threshold < 0:
            from podium.metrics import fit_threshold  # metrics imports this module

            threshold = fit_threshold(targets, probs)
        return {"threshold": float(threshold)}

    def predict(self, probs: np.ndarray, decisions: Mapping[str, Any]) -> np.ndarray:
        """Every class at or above ``decisions["threshold"]`` (default 0.5); the most likely one where none is."""
        return decode_multilabel(np.asarray(probs), float(decisions.get("threshold", DEFAULT_THRESHOLD)))


TASKS: Registry[Task] = Registry("task")


def _add(task: Task) -> None:
    TASKS.register(task.name)(task)


_add(SingleLabelTask("binary", "ce", ("roc_auc", "accuracy", "log_loss"), "roc_auc", "class",
                     ("probs", "prob", "label"), num_classes=2))
_add(SingleLabelTask("multiclass", "ce", ("accuracy", "log_loss", "macro_f1"), "accuracy", "class",
                     ("probs", "label")))
_add(SingleLabelTask("ordinal", "ce", ("qwk", "accuracy", "log_loss"), "qwk", "class", ("probs", "label"),
                     auto=False, ordered=True))
_add(MultiLabelTask("multilabel", "bce", ("mean_auc", "sample_f1"), "mean_auc", "iterative", ("probs", "labels")))


def get_task(name: str) -> Task:
    """The registered task called ``name``."""
    return TASKS.get(name)


def detect_task(lists: Sequence[Sequence[str]], classes: Sequence[str]) -> Task:
    """``data.task=auto``: the first registered task open to auto-detection that accepts labels of this shape."""
    for name in TASKS:
        task = TASKS.get(name)
        if task.auto and task.accepts(lists, classes):
            return task
    raise PodiumError(f"No task fits these labels; set data.task to one of {', '.join(TASKS)}.")


def decode_multilabel(probs: np.ndarray, threshold: float | np.ndarray) -> np.ndarray:
    """0/1 label matrix: every class above the threshold, and the most likely class where none is.

    A submission row with no label scores zero on sample F1, so a row is never left empty.
    """
    out = (probs >= threshold).astype(np.int64)
    empty = out.sum(axis=1) == 0
    out[empty, probs[empty].argmax(axis=1)] = 1
    return out
