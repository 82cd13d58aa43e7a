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


def _per_row(weight: torch.Tensor | None, y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Each row's class weight (ones without class weights)."""
    return torch.ones(len(y), device=like.device) if weight is None else weight.to(like.device)[y]


@LOSSES.register("cumulative")
def cumulative(smoothing: float, weight: torch.Tensor | None) -> LossFn:
    """Ordinal grades as K-1 binary cuts: BCE of logit k against (grade > k), targets smoothed towards 0.5, rows
    weighted by their grade's class weight (see podium.ordinal)."""

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cuts = torch.arange(logits.shape[1], device=logits.device)
        target = (y.view(-1, 1) > cuts).float() * (1 - smoothing) + 0.5 * smoothing
        per_row = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none").mean(dim=1)
        w = _per_row(weight, y, logits)
        return (per_row * w).sum() / w.sum()

    return loss


@LOSSES.register("regression")
def regression(smoothing: float, weight: torch.Tensor | None) -> LossFn:
    """Ordinal grades as one number: smooth L1 (Huber, beta 1) between the single output and the grade, rows weighted
    by their grade's class weight; no label smoothing (see podium.ordinal)."""

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        per_row = F.smooth_l1_loss(logits.float()[:, 0], y.float(), reduction="none")
        w = _per_row(weight, y, logits)
        return (per_row * w).sum() / w.sum()

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
