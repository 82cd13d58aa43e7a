"""``create_model``: a timm backbone by name, with the configured weight source and head size."""

from __future__ import annotations

import difflib
from dataclasses import replace
from typing import Any

import timm
import torch

from podium.config import ModelConfig
from podium.core.errors import PodiumError
from podium.models.heads import HEADS, init_new_head
from podium.models.weights import WEIGHT_SOURCES, check_weights


def model_kwargs(cfg: ModelConfig) -> dict[str, Any]:
    """Keyword arguments for timm.create_model that the config sets (only non-defaults, as not all models take all)."""
    kwargs: dict[str, Any] = HEADS.get(cfg.head)(cfg)
    if cfg.drop_path_rate:
        kwargs["drop_path_rate"] = cfg.drop_path_rate
    return kwargs


def check_model(cfg: ModelConfig) -> None:
    """Fail now, with the message model creation would give, on an unknown architecture or missing weights."""
    if not timm.is_model(cfg.name):
        names = timm.list_models()
        typo = difflib.get_close_matches(cfg.name.split(".")[0].lower(), names, n=1, cutoff=0.8)
        close = [n for n in timm.list_models(f"*{cfg.name.split('.')[0][:12]}*") if n not in typo][:8]
        hint = f" Did you mean {typo[0]!r}?" if typo else ""
        hint += f" Similar: {', '.join(close)}." if close else ""
        raise PodiumError(f"Unknown timm model {cfg.name!r}.{hint} `podium models PATTERN` lists them.")
    check_weights(cfg)


def create_model(cfg: ModelConfig, num_classes: int, pretrained: str | None = None) -> torch.nn.Module:
    """Create ``cfg.name`` with ``num_classes`` outputs, weights from source ``pretrained`` (default: the config's)."""
    check_model(replace(cfg, pretrained=pretrained or cfg.pretrained))
    name = pretrained or cfg.pretrained
    kwargs = model_kwargs(cfg)
    model = WEIGHT_SOURCES.get(name)(cfg, num_classes, kwargs)
    fresh_head = num_classes != model.pretrained_cfg.get("num_classes") or "global_pool" in kwargs
    if WEIGHT_SOURCES.get(name).pretrained and fresh_head:
        init_new_head(model)
    return model
