"""Tasks: what the targets are, how logits become probabilities and labels, which loss and metrics apply.

A task is chosen from the data (binary, multiclass, multilabel) or by the user (ordinal), and everything downstream
asks the task rather than branching on its name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from podium.registry import Registry


@dataclass(frozen=True)
class Task:
    """How one kind of target is trained, scored and decoded."""

    name: str
    multilabel: bool
    loss: str
    metrics: tuple[str, ...]
    primary: str

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Per-class probabilities from logits (softmax for single-label tasks, sigmoid for multilabel)."""
        logits = np.asarray(logits, dtype=np.float64)
        if self.multilabel:
            return 1.0 / (1.0 + np.exp(-logits))
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


TASKS: Registry[Task] = Registry("task")


def _add(task: Task) -> None:
    TASKS.register(task.name)(task)


_add(Task("binary", False, "ce", ("roc_auc", "accuracy", "log_loss"), "roc_auc"))
_add(Task("multiclass", False, "ce", ("accuracy", "log_loss", "macro_f1"), "accuracy"))
_add(Task("ordinal", False, "ce", ("qwk", "accuracy", "log_loss"), "qwk"))
_add(Task("multilabel", True, "bce", ("mean_auc", "sample_f1"), "mean_auc"))


def get_task(name: str) -> Task:
    """The registered task called ``name``."""
    return TASKS.get(name)


def decode_multilabel(probs: np.ndarray, threshold: float | np.ndarray) -> np.ndarray:
    """0/1 label matrix: every class above the threshold, and the most likely class where none is.

    A submission row with no label scores zero on sample F1, so a row is never left empty.
    """
    out = (probs >= threshold).astype(np.int64)
    empty = out.sum(axis=1) == 0
    out[empty, probs[empty].argmax(axis=1)] = 1
    return out
