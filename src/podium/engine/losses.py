"""Losses and class weights, as registered builders ``(num_classes, smoothing, weights) -> loss_fn``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from podium.registry import Registry
from podium.tasks import Task

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSSES: Registry[Callable[[float, torch.Tensor | None], LossFn]] = Registry("loss")
CLASS_WEIGHTS: Registry[Callable[[Task, np.ndarray, int], np.ndarray | None]] = Registry("class weighting")


@LOSSES.register("ce")
def cross_entropy(smoothing: float, weight: torch.Tensor | None) -> LossFn:
    """Softmax cross-entropy with label smoothing on class-index targets."""

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w = None if weight is None else weight.to(logits.device)
        return F.cross_entropy(logits.float(), y, weight=w, label_smoothing=smoothing)

    return loss


@LOSSES.register("bce")
def bce(smoothing: float, pos_weight: torch.Tensor | None) -> LossFn:
    """Sigmoid binary cross-entropy per class, targets smoothed towards 0.5."""

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        target = y.float() * (1 - smoothing) + 0.5 * smoothing
        w = None if pos_weight is None else pos_weight.to(logits.device)
        return F.binary_cross_entropy_with_logits(logits.float(), target, pos_weight=w)

    return loss


@CLASS_WEIGHTS.register("none")
def no_weights(task: Task, targets: np.ndarray, num_classes: int) -> np.ndarray | None:
    """Every class counts the same."""
    return None


@CLASS_WEIGHTS.register("balanced")
def balanced(task: Task, targets: np.ndarray, num_classes: int) -> np.ndarray | None:
    """The task's own balanced weights (``Task.balanced_weights``): inverse frequency, or BCE positive weights."""
    return task.balanced_weights(targets, num_classes)


def create_loss(name: str, task: Task, smoothing: float, class_weights: str, targets: np.ndarray,
                num_classes: int) -> LossFn:
    """The loss for ``task`` (``auto`` picks the task's own), weighted as configured from the training targets."""
    w = CLASS_WEIGHTS.get(class_weights)(task, targets, num_classes)
    weight = None if w is None else torch.tensor(w, dtype=torch.float32)
    return LOSSES.get(task.loss if name == "auto" else name)(smoothing, weight)
