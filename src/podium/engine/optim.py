"""AdamW without weight decay on norms and biases, discriminative learning rates for fine-tuning (a backbone factor
or timm's layer-wise decay), and a per-update linear-warmup + cosine schedule per parameter group."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from timm.optim import create_optimizer_v2
from torch.optim.lr_scheduler import LambdaLR

from podium.config import FinetuneConfig, TrainConfig
from podium.engine.accel import resolve_device
from podium.engine.finetune import head_parameter_names


def backbone_groups(model: torch.nn.Module, weight_decay: float, backbone_lr: float) -> list[dict[str, Any]]:
    """Parameter groups: head and backbone (LR scaled by ``backbone_lr``), each with and without weight decay."""
    head = head_parameter_names(model)
    skip = set(getattr(model, "no_weight_decay", lambda: set())())
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        decay = p.ndim > 1 and name not in skip  # norms and biases are 1-d: no decay, as in timm
        groups.setdefault((name in head, decay), []).append(p)
    return [{"params": ps, "weight_decay": weight_decay if decay else 0.0, "lr_scale": 1.0 if is_head else backbone_lr}
            for (is_head, decay), ps in groups.items()]


def create_optimizer(model: torch.nn.Module, cfg: TrainConfig, ft: FinetuneConfig | None = None
                     ) -> torch.optim.Optimizer:
    """AdamW through timm; each group's LR is ``cfg.lr`` times its scale (backbone factor or layer-wise decay)."""
    ft = ft or FinetuneConfig(freeze_epochs=0, backbone_lr=1.0)
    # The fused kernel updates all tensors in one pass: 2 ms instead of 9 ms per step for tf_efficientnet_lite0 on
    # 2 CPU cores (torch's CPU default is a Python loop over tensors); same maths.
    fused = {"fused": True} if resolve_device(cfg.device) in ("cpu", "cuda") else {}
    if ft.layer_decay > 0:
        opt = create_optimizer_v2(model, "adamw", lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  layer_decay=ft.layer_decay, **fused)
    else:
        opt = create_optimizer_v2(backbone_groups(model, cfg.weight_decay, ft.backbone_lr), "adamw", lr=cfg.lr,
                                  **fused)
    # timm leaves lr_scale to its own schedulers; ours is a LambdaLR on each group's base LR, so apply it here.
    for group in opt.param_groups:
        group["lr"] = cfg.lr * group.get("lr_scale", 1.0)
    return opt


def warmup_cosine(warmup_steps: int, total_steps: int, min_ratio: float, delay: int = 0) -> Callable[[int], float]:
    """LR multiplier per optimiser update: 0 for ``delay`` updates, then linear from ~0 to 1 over warmup, then cosine
    down to ``min_ratio`` at ``total_steps``."""

    def factor(step: int) -> float:
        step -= delay
        if step < 0:
            return 0.0
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - delay - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def create_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, updates_per_epoch: int,
                     model: torch.nn.Module | None = None, ft: FinetuneConfig | None = None) -> LambdaLR:
    """The schedule over ``epochs * updates_per_epoch`` optimiser updates.

    With a frozen head-only warm-up (``ft.freeze_epochs``), the backbone's groups start their own warmup + cosine
    when they are unfrozen, like fastai's fine_tune, instead of jumping in at the peak LR with a fresh Adam state.
    """
    total = max(1, cfg.epochs * updates_per_epoch)
    warmup = max(0, min(total - 1, int(round(cfg.warmup_epochs * updates_per_epoch))))
    head_fn = warmup_cosine(warmup, total, cfg.min_lr_ratio)
    delay = min(total - 1, (ft.freeze_epochs if ft else 0) * updates_per_epoch)
    if model is None or delay <= 0:
        return LambdaLR(optimizer, head_fn)
    head_ids = {id(p) for n, p in model.named_parameters() if n in head_parameter_names(model)}
    backbone_fn = warmup_cosine(min(warmup, total - delay - 1), total, cfg.min_lr_ratio, delay)
    fns = [head_fn if any(id(p) in head_ids for p in g["params"]) else backbone_fn for g in optimizer.param_groups]
    return LambdaLR(optimizer, fns)
