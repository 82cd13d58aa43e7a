"""AdamW without weight decay on norms and biases, and a per-update linear-warmup + cosine schedule."""

from __future__ import annotations

import math

import torch
from timm.optim import create_optimizer_v2
from torch.optim.lr_scheduler import LambdaLR

from podium.config import TrainConfig


def create_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW through timm, which keeps 1-d parameters (norms, biases) out of weight decay."""
    return create_optimizer_v2(model, "adamw", lr=cfg.lr, weight_decay=cfg.weight_decay)


def warmup_cosine(warmup_steps: int, total_steps: int, min_ratio: float):
    """LR multiplier per optimiser update: linear from ~0 to 1 over warmup, then cosine down to ``min_ratio``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def create_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, updates_per_epoch: int) -> LambdaLR:
    """The schedule over ``epochs * updates_per_epoch`` optimiser updates."""
    total = max(1, cfg.epochs * updates_per_epoch)
    warmup = min(total - 1, int(round(cfg.warmup_epochs * updates_per_epoch)))
    return LambdaLR(optimizer, warmup_cosine(max(0, warmup), total, cfg.min_lr_ratio))
