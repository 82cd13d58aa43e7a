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
from podium.tasks.base import CLASS, MULTIHOT
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


bce.shapes = (MULTIHOT,)  # sigmoid per class: multi-hot targets


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


focal.shapes = (CLASS, MULTIHOT)


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


def check_loss_fits(name: str, task: Task) -> None:
    """At config load, with ``data.task`` named: the loss's coding must suit the task (``Task.for_loss``: ordered
    grades need the ordinal task, which needs a grade coding), and a loss that declares the target ``shapes`` it
    reads must read one of the task's. Losses that declare none are judged on a dummy batch (``check_loss``)."""
    task.for_loss(name, 3)
    shapes = getattr(LOSSES.get(name), "shapes", None)
    if shapes is not None and not set(shapes) & set(task.shapes):
        raise PodiumError(f"train.loss={name} reads {' or '.join(shapes)} targets; the {task.name} task's are "
                          f"{' or '.join(task.shapes)}. Use train.loss=auto.")


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


# --- noise-robust losses ---------------------------------------------------------------------------------------------
# Cross-entropy's gradient on an image whose label is wrong grows without bound as the model grows confident in the
# right class, so a few percent of flipped labels drag the whole model. Each loss below caps that pull:
# - bitempered: bi-tempered logistic loss (Amid et al. 2019): a tempered log (t1 < 1) bounds the loss, a heavy-tailed
#   tempered softmax (t2 > 1) keeps far-away outliers from dominating; the loss of several top Cassava solutions;
# - taylor: Taylor cross-entropy (Feng et al. 2020): -log p's series around 1 cut at ``order`` terms, bounded in p;
# - sce: symmetric cross-entropy (Wang et al. 2019): alpha x CE + beta x reverse CE, the reverse term bounded;
# - gce: generalized cross-entropy (Zhang & Sabuncu 2018): (1 - p^q) / q, between CE (q -> 0) and MAE (q = 1).
# Each takes class-index or soft targets and applies label smoothing itself, like the losses above. Single-label tasks
# use the softmax over classes, multilabel tasks each class's sigmoid as a two-class problem, and ordinal grades a
# softmax over grades (the coding of the same name in podium.tasks.ordinal.ORDINAL_LOSSES).

# the defaults of the papers' recommended settings for noisy labels
BITEMPERED_T1, BITEMPERED_T2 = 0.8, 1.2
TAYLOR_ORDER = 2
SCE_ALPHA, SCE_BETA = 0.1, 1.0
GCE_Q = 0.7


def _robust(name: str) -> Callable[[Callable[..., LossFn]], Callable[..., LossFn]]:
    """Register a noise-robust loss builder in ``LOSSES`` for class-index and multi-hot targets (ordinal grades train
    it as a softmax over grades: the coding of the same name in ``podium.tasks.ordinal.ORDINAL_LOSSES``)."""

    def wrap(builder: Callable[..., LossFn]) -> Callable[..., LossFn]:
        builder.shapes = (CLASS, MULTIHOT)
        return LOSSES.register(name)(builder)

    return wrap


def _soft(y: torch.Tensor, classes: int, smoothing: float) -> torch.Tensor:
    """Class-index or soft targets as a smoothed (N, C) distribution."""
    target = F.one_hot(y, classes).float() if y.ndim == 1 else y.float()
    return target * (1 - smoothing) + smoothing / classes


def _reduce(per_row: torch.Tensor, weight: torch.Tensor | None, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows, weighted by each row's class weight (soft targets weigh their classes' weights)."""
    if weight is None:
        return per_row.mean()
    w = target @ weight.to(per_row.device)
    return (per_row * w).sum() / w.sum()


def _binary_pairs(logits: torch.Tensor, y: torch.Tensor, smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Multilabel outputs as (N, C, 2) two-class problems: activations [z, 0] (softmax = [sigmoid z, 1 - sigmoid z])
    and targets [y, 1 - y] smoothed towards 0.5."""
    target = y.float() * (1 - smoothing) + 0.5 * smoothing
    return torch.stack([logits, torch.zeros_like(logits)], -1), torch.stack([target, 1 - target], -1)


def _per_class(per_element: torch.Tensor, pos_weight: torch.Tensor | None, target: torch.Tensor) -> torch.Tensor:
    """Mean over images and classes; BCE-style positive weights scale the positive part of each class."""
    if pos_weight is not None:
        per_element = per_element * (1 + (pos_weight.to(per_element.device) - 1) * target)
    return per_element.mean()


def _build(task: Task | None, smoothing: float, weight: torch.Tensor | None,
           rowwise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> LossFn:
    """A loss from ``rowwise(activations, target distribution) -> per-row loss``, for the task's output kind."""
    per_class = task is not None and MULTIHOT in task.shapes  # independent classes: a two-class problem each

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if per_class:
            pairs, target = _binary_pairs(logits, y.to(logits.device), smoothing)
            return _per_class(rowwise(pairs, target), weight, target[..., 0])
        target = _soft(y.to(logits.device), logits.shape[1], smoothing)
        return _reduce(rowwise(logits, target), weight, target)

    return loss


# --- bi-tempered logistic loss --------------------------------------------------------------------------------------


def log_t(u: torch.Tensor, t: float) -> torch.Tensor:
    """Tempered logarithm: (u^(1-t) - 1) / (1-t); log u at t = 1."""
    return u.log() if t == 1.0 else (u.pow(1.0 - t) - 1.0) / (1.0 - t)


def exp_t(u: torch.Tensor, t: float) -> torch.Tensor:
    """Tempered exponential: [1 + (1-t) u]_+^(1/(1-t)); exp u at t = 1."""
    return u.exp() if t == 1.0 else torch.relu(1.0 + (1.0 - t) * u).pow(1.0 / (1.0 - t))


def tempered_softmax(activations: torch.Tensor, t: float, iterations: int = 5) -> torch.Tensor:
    """Probabilities exp_t(a - lambda(a)) that sum to one over the last axis. For t > 1 the normaliser lambda is the
    fixed point of the paper's iteration (it converges in a few steps); t = 1 is the softmax."""
    if t == 1.0:
        return activations.softmax(-1)
    mu = activations.max(-1, keepdim=True).values
    a0 = activations - mu
    a = a0
    for _ in range(iterations):
        partition = exp_t(a, t).sum(-1, keepdim=True)
        a = a0 * partition.pow(1.0 - t)
    partition = exp_t(a, t).sum(-1, keepdim=True)
    normaliser = -log_t(1.0 / partition, t) + mu
    return exp_t(activations - normaliser, t)


def bitempered_rows(activations: torch.Tensor, target: torch.Tensor, t1: float, t2: float) -> torch.Tensor:
    """The bi-tempered loss of each row (summed over the last axis)."""
    p = tempered_softmax(activations, t2)
    values = (target * log_t(target + 1e-10, t1) - target * log_t(p, t1)
              - target.pow(2.0 - t1) / (2.0 - t1) + p.pow(2.0 - t1) / (2.0 - t1))
    return values.sum(-1)


@_robust("bitempered")
def bitempered(smoothing: float, weight: torch.Tensor | None, task: Task | None = None, t1: float = BITEMPERED_T1,
               t2: float = BITEMPERED_T2, **options: float) -> LossFn:
    """Bi-tempered logistic loss (t1 < 1 bounds it, t2 > 1 a heavy-tailed softmax); t1 = t2 = 1 is cross-entropy."""
    return _build(task, smoothing, weight, lambda a, y: bitempered_rows(a, y, t1, t2))


# --- Taylor, symmetric and generalized cross-entropy -----------------------------------------------------------------


def taylor_rows(activations: torch.Tensor, target: torch.Tensor, order: int) -> torch.Tensor:
    """sum_c y_c sum_{k=1..order} (1 - p_c)^k / k: -log p_c's Taylor series around p = 1, cut at ``order``."""
    gap = 1.0 - activations.softmax(-1)
    series = sum(gap.pow(k) / k for k in range(1, order + 1))
    return (target * series).sum(-1)


@_robust("taylor")
def taylor(smoothing: float, weight: torch.Tensor | None, task: Task | None = None, order: int = TAYLOR_ORDER,
           **options: float) -> LossFn:
    """Taylor cross-entropy of the given ``order`` (2: the setting of the Cassava solutions)."""
    return _build(task, smoothing, weight, lambda a, y: taylor_rows(a, y, int(order)))


def sce_rows(activations: torch.Tensor, target: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """alpha x CE(y, p) + beta x reverse CE(p, y), log 0 clipped to log 1e-4 as in the paper."""
    logp = activations.log_softmax(-1)
    forward = -(target * logp).sum(-1)
    reverse = -(logp.exp() * target.clamp(1e-4, 1.0).log()).sum(-1)
    return alpha * forward + beta * reverse


@_robust("sce")
def symmetric(smoothing: float, weight: torch.Tensor | None, task: Task | None = None, alpha: float = SCE_ALPHA,
              beta: float = SCE_BETA, **options: float) -> LossFn:
    """Symmetric cross-entropy: ``alpha`` x cross-entropy + ``beta`` x reverse cross-entropy."""
    return _build(task, smoothing, weight, lambda a, y: sce_rows(a, y, alpha, beta))


def gce_rows(activations: torch.Tensor, target: torch.Tensor, q: float) -> torch.Tensor:
    """sum_c y_c (1 - p_c^q) / q."""
    p = activations.softmax(-1).clamp_min(1e-12)
    return (target * (1.0 - p.pow(q)) / q).sum(-1)


@_robust("gce")
def generalized(smoothing: float, weight: torch.Tensor | None, task: Task | None = None, q: float = GCE_Q,
                **options: float) -> LossFn:
    """Generalized cross-entropy (the Box-Cox loss, q in (0, 1])."""
    return _build(task, smoothing, weight, lambda a, y: gce_rows(a, y, q))
