"""Weight sources: registered functions that create a timm model with ``num_classes`` outputs and initial weights."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import timm
import torch

from podium.config import ModelConfig
from podium.errors import PodiumError, list_some
from podium.registry import Registry

WeightSource = Callable[[ModelConfig, int, dict[str, Any]], torch.nn.Module]
WEIGHT_SOURCES: Registry[WeightSource] = Registry("weight source")
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


@WEIGHT_SOURCES.register("none")
def random_init(cfg: ModelConfig, num_classes: int, kwargs: dict[str, Any]) -> torch.nn.Module:
    """Random initialisation: training from scratch."""
    return timm.create_model(cfg.name, pretrained=False, num_classes=num_classes, **kwargs)


@WEIGHT_SOURCES.register("hub")
def hub(cfg: ModelConfig, num_classes: int, kwargs: dict[str, Any]) -> torch.nn.Module:
    """timm's own pretrained download (Hugging Face hub or URL), cached where timm caches."""
    try:
        return timm.create_model(cfg.name, pretrained=True, num_classes=num_classes, **kwargs)
    except (OSError, RuntimeError, ValueError) as e:
        raise PodiumError(
            f"Could not download pretrained weights for {cfg.name} ({type(e).__name__}: {e}). "
            "Offline? Use model.pretrained=file model.weights_path=PATH, or model.pretrained=none."
        ) from None


def find_weights_file(path: str | Path) -> Path:
    """The weights file itself, or the single weights file inside a folder."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.suffix in WEIGHT_SUFFIXES and f.is_file())
        if len(files) == 1:
            return files[0]
        if files:
            raise PodiumError(f"{p} holds several weights files ({list_some([f.name for f in files])}); "
                              "set model.weights_path to one of them.")
    raise PodiumError(f"No weights file at {p} (looked for {', '.join(WEIGHT_SUFFIXES)}); fix model.weights_path.")


@WEIGHT_SOURCES.register("file")
def local_file(cfg: ModelConfig, num_classes: int, kwargs: dict[str, Any]) -> torch.nn.Module:
    """A local .pth/.safetensors/.bin file (or a folder with one), loaded through timm's pretrained_cfg overlay.

    timm drops the classifier weights when the class count differs, so the head is freshly initialised.
    """
    if not cfg.weights_path:
        raise PodiumError("model.pretrained=file needs model.weights_path=PATH (a weights file or a folder).")
    path = find_weights_file(cfg.weights_path)
    try:
        return timm.create_model(cfg.name, pretrained=True, num_classes=num_classes,
                                 pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    except (RuntimeError, KeyError, ValueError) as e:
        raise PodiumError(f"Weights file {path} does not fit {cfg.name}: {str(e).splitlines()[0]}") from None
