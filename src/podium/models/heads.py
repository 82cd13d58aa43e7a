"""Classifier heads, each a registered function that returns the timm.create_model keyword arguments building it.

Heads are expressed through timm's own options (pooling type, dropout before the classifier), so every timm
architecture supports every head, and checkpoints rebuild with the same keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from podium.config import ModelConfig
from podium.core.registry import Registry

Head = Callable[[ModelConfig], dict[str, Any]]
HEADS: Registry[Head] = Registry("head")
DEFAULT_HEAD_DROPOUT = 0.25


@HEADS.register("linear")
def linear(cfg: ModelConfig) -> dict[str, Any]:
    """The architecture's own pooling and a linear layer (dropout only if model.drop_rate is set)."""
    return {"drop_rate": cfg.drop_rate} if cfg.drop_rate else {}


@HEADS.register("dropout")
def dropout(cfg: ModelConfig) -> dict[str, Any]:
    """Dropout (model.drop_rate, or 0.25 when unset) then a linear layer."""
    return {"drop_rate": cfg.drop_rate or DEFAULT_HEAD_DROPOUT}


@HEADS.register("catavgmax")
def catavgmax(cfg: ModelConfig) -> dict[str, Any]:
    """Average and max pooling concatenated (twice the features, fastai's head pooling), then a linear layer."""
    return {"global_pool": "catavgmax", **linear(cfg)}


def init_new_head(model: torch.nn.Module) -> None:
    """Small-normal weights and zero bias for a freshly created classifier on top of pretrained features.

    Some timm initialisations (EfficientNet's: uniform with range 1/sqrt(classes)) give logits of several units
    for a 3-class head, so the first epochs would be spent unlearning confident random predictions.
    """
    head = model.get_classifier()
    if isinstance(head, torch.nn.Linear):
        torch.nn.init.trunc_normal_(head.weight, std=0.01)
        torch.nn.init.zeros_(head.bias)
