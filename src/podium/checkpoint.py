"""Checkpoints that carry everything inference needs: weights, resolved config, classes, task, preprocessing and
threshold. They hold only tensors and plain Python values, so they load with ``torch.load(weights_only=True)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from podium.config import PodiumConfig, from_dict, to_dict
from podium.errors import PodiumError
from podium.io import atomic_path
from podium.models.factory import create_model
from podium.models.preprocessing import Preprocessing

FORMAT = "podium-checkpoint-1"


def save_checkpoint(path: str | Path, state_dict: dict[str, torch.Tensor], cfg: PodiumConfig, classes: list[str],
                    task: str, prep: Preprocessing, **extra: Any) -> Path:
    """Write a self-describing checkpoint atomically."""
    ckpt = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "config": to_dict(cfg),
        "classes": list(classes),
        "task": task,
        "preprocessing": prep.to_dict(),
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely (no pickled code) and check that it is one of podium's."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise PodiumError(f"No checkpoint at {path}.") from None
    except Exception as e:  # noqa: BLE001 - a damaged file can fail in many ways
        raise PodiumError(f"Checkpoint {path} cannot be read ({type(e).__name__}); it may be incomplete.") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise PodiumError(f"{path} is not a podium checkpoint.")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> tuple[torch.nn.Module, Preprocessing, PodiumConfig]:
    """Rebuild exactly the trained model (architecture, head, weights) and its preprocessing."""
    cfg = from_dict(ckpt["config"])
    model = create_model(cfg.model, len(ckpt["classes"]), pretrained="none")
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), Preprocessing.from_dict(ckpt["preprocessing"]), cfg
