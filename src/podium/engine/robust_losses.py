"""Losses that bound the pull of a wrong label, registered with the others in ``LOSSES``.

Cross-entropy's gradient on an image whose label is wrong grows without bound as the model grows confident in the
right class, so a few percent of flipped labels drag the whole model. Each loss here caps that pull:
- ``bitempered``: bi-tempered logistic loss (Amid et al. 2019): a tempered log (t1 < 1) bounds the loss, a heavy-tailed
  tempered softmax (t2 > 1) keeps far-away outliers from dominating; the loss of several top Cassava solutions;
- ``taylor``: Taylor cross-entropy (Feng et al. 2020): the first ``order`` terms of -log p's series around 1, a bounded
  polynomial in (1 - p);
- ``sce``: symmetric cross-entropy (Wang et al. 2019): ``alpha`` x CE + ``beta`` x reverse CE, the reverse term
  being bounded and robust;
- ``gce``: generalized cross-entropy (Zhang & Sabuncu 2018): (1 - p^q) / q, between CE (q -> 0) and MAE (q = 1).

Each takes class-index or soft targets (MixUp, CutMix, soft labels) and applies label smoothing itself, like the losses
of ``podium.engine.losses``. Single-label tasks use the softmax over classes; multilabel tasks use each class's
sigmoid as a two-class problem; ordinal grades train them as a softmax over grades (the ``ce`` coding, registered in
``ORDINAL_LOSSES`` under the same name). Each builder declares the target ``shapes`` it reads (``podium.tasks.base``),
as metrics, submission formats and stratifiers do; ``losses.loss_fits`` reads them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from podium.engine.losses import LOSSES, LossFn
from podium.tasks.base import CLASS, MULTIHOT, Task
from podium.tasks.ordinal import ORDINAL_LOSSES, Softmax

# the defaults of the papers' recommended settings for noisy labels
BITEMPERED_T1, BITEMPERED_T2 = 0.8, 1.2
TAYLOR_ORDER = 2
SCE_ALPHA, SCE_BETA = 0.1, 1.0
GCE_Q = 0.7


def _robust(name: str) -> Callable[[Callable[..., LossFn]], Callable[..., LossFn]]:
    """Register a loss builder in ``LOSSES`` for class-index and multi-hot targets, and as a softmax coding of ordinal
    grades (``ORDINAL_LOSSES``), so every task can train with it."""

    def wrap(builder: Callable[..., LossFn]) -> Callable[..., LossFn]:
        builder.shapes = (CLASS, MULTIHOT)
        ORDINAL_LOSSES.register(name)(Softmax(name, needs_order=False))
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
