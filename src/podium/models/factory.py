"""``create_model``: a timm backbone by name, with the configured weight source and head size."""

from __future__ import annotations

from typing import Any

import timm
import torch

from podium.config import ModelConfig
from podium.errors import PodiumError
from podium.models.weights import WEIGHT_SOURCES


def model_kwargs(cfg: ModelConfig) -> dict[str, Any]:
    """Keyword arguments for timm.create_model that the config sets (only non-defaults, as not all models take all)."""
    kwargs: dict[str, Any] = {}
    if cfg.drop_rate:
        kwargs["drop_rate"] = cfg.drop_rate
    if cfg.drop_path_rate:
        kwargs["drop_path_rate"] = cfg.drop_path_rate
    return kwargs


def create_model(cfg: ModelConfig, num_classes: int, pretrained: str | None = None) -> torch.nn.Module:
    """Create ``cfg.name`` with ``num_classes`` outputs, weights from source ``pretrained`` (default: the config's)."""
    if not timm.is_model(cfg.name):
        close = timm.list_models(f"*{cfg.name.split('.')[0][:12]}*")[:8]
        hint = f" Similar: {', '.join(close)}." if close else ""
        raise PodiumError(f"Unknown timm model {cfg.name!r}.{hint}")
    source = WEIGHT_SOURCES.get(pretrained or cfg.pretrained)
    return source(cfg, num_classes, model_kwargs(cfg))
