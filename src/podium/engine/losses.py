"""Losses and class weights, as registered builders ``(smoothing, weights, task, **options) -> loss_fn``.

Every loss takes class-index targets or soft targets (N, C) (from batch augmentation), and applies label smoothing
itself, so smoothing and mixing combine correctly."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from podium.config import TrainConfig
from podium.core.errors import PodiumError
from podium.core.registry import Registry
from podium.tasks.base import MULTIHOT
from podium.tasks.task import Task

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSSES: Registry[Callable[..., LossFn]] = Registry("loss")
CLASS_WEIGHTS: Registry[Callable[[Task, np.ndarray, int], np.ndarray | None]] = Registry("class weighting")


@LOSSES.register("ce")
def cross_entropy(smoothing: float, weight: torch.Tensor | None, task: Task | None = None, **options: float
                  ) -> LossFn:
    """Softmax cross-entropy with label smoothing on class-index or soft targets."""

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w = None if weight is None else weight.to(logits.device)
        return F.cross_entropy(logits.float(), y, weight=w, label_smoothing=smoothing)

    return loss


@LOSSES.register("bce")
def bce(smoothing: float, pos_weight: torch.Tensor | None, task: Task | None = None, **options: float) -> LossFn:
    """Sigmoid binary cross-entropy per class, targets smoothed towards 0.5."""

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        target = y.float() * (1 - smoothing) + 0.5 * smoothing
        w = None if pos_weight is None else pos_weight.to(logits.device)
        return F.binary_cross_entropy_with_logits(logits.float(), target, pos_weight=w)

    return loss


@LOSSES.register("focal")
def focal(smoothing: float, weight: torch.Tensor | None, task: Task | None = None, gamma: float = 2.0,
          **options: float) -> LossFn:
    """Focal loss (Lin et al.): cross-entropy scaled by (1 - p)^gamma, so confident, easy images count less. Softmax
    over classes for single-label tasks; per class on sigmoids (torchvision's ``sigmoid_focal_loss``) for multilabel.
    Class weights: per class (softmax) or as BCE-style positive weights (sigmoid)."""
    per_class = task is not None and MULTIHOT in task.shapes  # a 0/1 matrix of independent classes: a sigmoid each

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        w = None if weight is None else weight.to(logits.device)
        if per_class:
            target = y.float() * (1 - smoothing) + 0.5 * smoothing
            per = sigmoid_focal_loss(logits, target, alpha=-1, gamma=gamma, reduction="none")
            if w is not None:
                per = per * (1 + (w - 1) * target)
            return per.mean()
        c = logits.shape[1]
        target = F.one_hot(y, c).float() if y.ndim == 1 else y.float()
        target = target * (1 - smoothing) + smoothing / c
        logp = F.log_softmax(logits, dim=1)
        per = -(target * (1 - logp.exp()).pow(gamma) * logp)
        if w is not None:
            per = per * w
        return per.sum(dim=1).mean()

    return loss


def _per_row(weight: torch.Tensor | None, y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Each row's class weight (ones without class weights); soft targets (MixUp) weigh their classes' weights."""
    if weight is None:
        return torch.ones(len(y), device=like.device)
    w = weight.to(like.device)
    return y.float() @ w if y.ndim == 2 else w[y]


def _grade_probs(y: torch.Tensor, num_grades: int) -> torch.Tensor:
    """Targets as a (N, K) distribution over grades: one-hot for grades, as they are for soft targets (MixUp)."""
    return y.float() if y.ndim == 2 else F.one_hot(y, num_grades).float()


@LOSSES.register("cumulative")
def cumulative(smoothing: float, weight: torch.Tensor | None, task: Task | None = None, **options: float) -> LossFn:
    """Ordinal grades as K-1 binary cuts: BCE of logit k against (grade > k), targets smoothed towards 0.5, rows
    weighted by their grade's class weight (see podium.tasks.ordinal)."""

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        k = logits.shape[1]  # K-1 cuts; (grade > cut) averaged over the target distribution (exact for one grade)
        above = (torch.arange(k + 1, device=logits.device).view(-1, 1) > torch.arange(k, device=logits.device)).float()
        target = _grade_probs(y, k + 1).to(logits.device) @ above * (1 - smoothing) + 0.5 * smoothing
        per_row = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none").mean(dim=1)
        w = _per_row(weight, y, logits)
        return (per_row * w).sum() / w.sum()

    return loss


@LOSSES.register("regression")
def regression(smoothing: float, weight: torch.Tensor | None, task: Task | None = None, **options: float) -> LossFn:
    """Ordinal grades as one number: smooth L1 (Huber, beta 1) between the single output and the grade, rows weighted
    by their grade's class weight; no label smoothing (see podium.tasks.ordinal)."""

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        grade = y.float() @ torch.arange(y.shape[1], device=y.device, dtype=torch.float32) if y.ndim == 2 else y.float()
        per_row = F.smooth_l1_loss(logits.float()[:, 0], grade.to(logits.device), reduction="none")
        w = _per_row(weight, y, logits)
        return (per_row * w).sum() / w.sum()

    loss.tempered = False  # the output is a grade, not a logit: distillation compares it at temperature 1
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
                num_classes: int, **options: float) -> LossFn:
    """The loss for ``task`` (``auto`` picks the task's own), weighted as configured from the training targets;
    ``options`` (e.g. ``gamma``) go to the losses that use them."""
    w = CLASS_WEIGHTS.get(class_weights)(task, targets, num_classes)
    weight = None if w is None else torch.tensor(w, dtype=torch.float32)
    return LOSSES.get(task.loss if name == "auto" else name)(smoothing, weight, task=task, **options)


def configured_loss(tc: TrainConfig, task: Task, targets: np.ndarray, num_classes: int,
                    smoothing: float | None = None) -> LossFn:
    """``train.loss`` for ``task`` as the config sets it up (label smoothing unless ``smoothing`` is given, class
    weights from ``targets``, the focal gamma)."""
    return create_loss(tc.loss, task, tc.label_smoothing if smoothing is None else smoothing, tc.class_weights,
                       targets, num_classes, gamma=tc.focal_gamma)


def check_loss(tc: TrainConfig, task: Task, targets: np.ndarray, num_classes: int) -> None:
    """The configured loss must fit the task's targets (``train.loss=bce`` on a single-label task, say): tried on a
    dummy batch of the task's own targets, so every registered loss is judged the same way."""
    batch = targets[:2]
    try:
        loss_fn = configured_loss(tc, task, targets, num_classes)
        loss_fn(torch.zeros(len(batch), task.outputs(num_classes)), torch.as_tensor(batch))
    except (RuntimeError, ValueError, IndexError) as e:
        raise PodiumError(f"train.loss={tc.loss} does not fit the {task.name} task's targets "
                          f"({str(e).splitlines()[0]}); use train.loss=auto.") from None


def distillation(truth_loss: LossFn, teacher_loss: LossFn, num_classes: int, alpha: float, temperature: float
                 ) -> LossFn:
    """Knowledge distillation (Hinton et al.): ``(1 - alpha) x truth_loss(z, truth) + alpha x T^2 x
    teacher_loss(z / T, teacher)`` on targets packed as ``[truth, teacher]`` rows of 2C values (podium.inference.
    teachers; the teacher's probabilities are already softened at T). With the task's own loss on soft targets this is
    the KL divergence to the teacher for softmax and sigmoid outputs, and the coding's loss on the teacher's grade
    distribution for ordinal codings. Targets of any other shape (validation's hard labels) get ``truth_loss``."""
    t = temperature if getattr(truth_loss, "tempered", True) else 1.0

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.ndim != 2 or y.shape[1] != 2 * num_classes:
            return truth_loss(logits, y)
        truth, teacher = y[:, :num_classes], y[:, num_classes:]
        return (1 - alpha) * truth_loss(logits, truth) + alpha * t * t * teacher_loss(logits / t, teacher)

    return loss
