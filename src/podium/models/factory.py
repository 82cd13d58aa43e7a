"""``create_model``: a timm backbone by name, with the configured weight source and head size."""

from __future__ import annotations

import difflib
from dataclasses import replace
from typing import Any

import timm
import torch
from timm.data import resolve_data_config, resolve_model_data_config

from podium.config import DataConfig, ModelConfig
from podium.core.errors import PodiumError
from podium.data.pixels.image_ops import ImageOps, image_ops
from podium.data.pixels.preprocessing import Preprocessing
from podium.models.heads import HEADS, init_new_head
from podium.models.weights import WEIGHT_SOURCES, check_weights, pretrained_cfg_of


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


def resolve_preprocessing(model: torch.nn.Module | None, cfg: ModelConfig, data: DataConfig | None = None
                          ) -> Preprocessing:
    """The finished preprocessing of ``model``: size, interpolation, mean/std and crop from its pretrained_cfg, the
    config's size and resize method on top, and the image ops of ``data.preprocess`` (none without ``data``).
    ``model`` None: before the model exists (the plan's checks, the first pass that fills the decoded-image cache),
    from the pretrained_cfg timm lists for ``cfg.name``, which a model created by that name carries (timm's defaults
    where it lists none, as for such a model).

    The one place a ``Preprocessing`` is made; checkpoints carry it, so inference never resolves it again."""
    ops = image_ops(data) if data is not None else ImageOps()
    data_cfg = resolve_model_data_config(model) if model is not None else _listed_data_config(cfg.name)
    h, w = (cfg.img_size * 2)[:2] if cfg.img_size else tuple(int(v) for v in data_cfg["input_size"][-2:])
    return Preprocessing(
        size=h,
        width=0 if w == h else w,
        pad_fill=cfg.pad_fill,
        resize=cfg.resize,
        interpolation=str(data_cfg.get("interpolation", "bilinear")),
        mean=tuple(float(v) for v in data_cfg["mean"]),
        std=tuple(float(v) for v in data_cfg["std"]),
        crop_pct=float(data_cfg.get("crop_pct") or 1.0),
        ops=ops.names,
        op_params=ops.params,
    )



def _listed_data_config(name: str) -> dict[str, Any]:
    """timm's data config (input size, interpolation, mean, std, crop) of the pretrained_cfg it lists for ``name``."""
    listed = pretrained_cfg_of(name)
    return resolve_data_config(pretrained_cfg=listed.to_dict() if listed is not None else {"architecture": name})
