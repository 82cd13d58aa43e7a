"""The two files a fold writes, as typed records read and written only here.

``Checkpoint`` (``best.pt``) carries everything inference needs: weights, the resolved config, classes, task,
preprocessing and the run's decisions (thresholds, cut points, ...). ``ResumeState`` (``last.pt``) carries everything
an exact resume needs: model, EMA, optimiser, scheduler, gradient scaler, every random generator and the epoch.
Both hold only tensors and plain Python values, so they load with ``torch.load(weights_only=True)``: a checkpoint
from elsewhere cannot run code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from podium.config import PodiumConfig, from_dict, to_dict
from podium.core.errors import PodiumError
from podium.core.io import atomic_path
from podium.data.pixels.preprocessing import Preprocessing
from podium.models.factory import create_model
from podium.tasks.task import Task, get_task

FORMAT = "podium-checkpoint-3"
# version 1 kept a bare "threshold" instead of "decisions"; before version 3 an ordinal task's train.loss=auto meant ce
READABLE = ("podium-checkpoint-1", "podium-checkpoint-2", FORMAT)
_AUTO_LOSS_BEFORE_3 = {"ordinal": "ce"}
STATE_FORMAT = "podium-resume-2"


@dataclass(frozen=True)
class Checkpoint:
    """A trained fold's model and everything needed to use it."""

    state_dict: dict[str, torch.Tensor]
    config: PodiumConfig
    classes: tuple[str, ...]
    task: str
    preprocessing: Preprocessing
    fold: int = 0
    epoch: int = 0
    metric: str = ""
    score: float = float("nan")
    decisions: dict[str, Any] = field(default_factory=dict)

    def with_decisions(self, decisions: dict[str, Any]) -> Checkpoint:
        """The same checkpoint carrying the run's decisions."""
        return replace(self, decisions=dict(decisions))

    def half(self) -> Checkpoint:
        """The same checkpoint with its floating-point weights stored as fp16 (half the file; ``build_model`` loads
        them back into the fp32 model)."""
        return replace(self, state_dict={k: v.half() if v.is_floating_point() else v
                                         for k, v in self.state_dict.items()})

    def resolved_task(self) -> Task:
        """The task as the model was trained: coded by the config's ``train.loss`` over the checkpoint's classes."""
        return get_task(self.task).for_loss(self.config.train.loss, len(self.classes))

    def build_model(self) -> torch.nn.Module:
        """Rebuild exactly the trained model (architecture, head, weights), in eval mode, on the CPU."""
        model = create_model(self.config.model, self.resolved_task().outputs(len(self.classes)), pretrained="none")
        model.load_state_dict(self.state_dict)
        return model.eval()


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` atomically."""
    payload = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in ckpt.state_dict.items()},
        "config": to_dict(ckpt.config),
        "classes": list(ckpt.classes),
        "task": ckpt.task,
        "preprocessing": ckpt.preprocessing.to_dict(),
        "fold": ckpt.fold, "epoch": ckpt.epoch, "metric": ckpt.metric, "score": float(ckpt.score),
        "decisions": dict(ckpt.decisions),
    }
    _save(path, payload)
    return Path(path)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint safely (no pickled code), or raise one clear PodiumError naming the file."""
    d = _load(path, READABLE, "podium checkpoint")
    decisions = d.get("decisions", {"threshold": d["threshold"]} if "threshold" in d else {})
    config = from_dict(d["config"])
    if d["format"] != FORMAT and config.train.loss == "auto":
        loss = _AUTO_LOSS_BEFORE_3.get(str(d["task"]), "auto")
        config = replace(config, train=replace(config.train, loss=loss))
    return Checkpoint(d["state_dict"], config, tuple(d["classes"]), str(d["task"]),
                      Preprocessing.from_dict(d["preprocessing"]), int(d.get("fold", 0)), int(d.get("epoch", 0)),
                      str(d.get("metric", "")), float(d.get("score", float("nan"))), dict(decisions))


# ------------------------------------------------------------------------------------------------------ resume state


@dataclass(frozen=True)
class ResumeState:
    """A fold's training state after ``epoch`` completed epochs: resuming from it replays the remaining epochs
    exactly as an uninterrupted run would (same batches, augmentations, dropout masks and optimiser state)."""

    epoch: int
    best: float
    best_epoch: int
    rows: list[dict[str, Any]]
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    ema: dict[str, torch.Tensor] = field(default_factory=dict)
    scaler: dict[str, Any] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)


def save_state(path: str | Path, state: ResumeState) -> Path:
    """Write a resume state atomically."""
    _save(path, {"format": STATE_FORMAT, **{f.name: getattr(state, f.name) for f in fields(state)}})
    return Path(path)


def load_state(path: str | Path) -> ResumeState:
    """Read a resume state, or raise one clear PodiumError naming the file (missing, damaged or foreign)."""
    d = _load(path, (STATE_FORMAT,), "podium resume state")
    d.pop("format")
    try:
        return ResumeState(**d)
    except TypeError:
        raise PodiumError(f"{path} is not a podium resume state of this version.") from None


def rng_state() -> dict[str, Any]:
    """Every random generator a training step may draw from (Python, NumPy, torch CPU and CUDA), as plain values.

    Augmentations and shuffles are seeded per (seed, epoch, row) and need none of this; dropout, stochastic depth and
    batch-level augmentations draw from torch's global generator, which a resumed process must continue.
    """
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(mt), gauss], "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos),
                                                            int(has_gauss), float(cached)],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured (missing parts are left alone)."""
    if "python" in state:
        version, mt, gauss = state["python"]
        random.setstate((version, tuple(mt), gauss))
    if "numpy" in state:
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------------------- files


def _save(path: str | Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load(path: str | Path, formats: tuple[str, ...], what: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise PodiumError(f"No {what} at {path}.")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged or hostile file can fail in many ways
        reason = "it is empty" if path.stat().st_size == 0 else f"{type(e).__name__}; it may be incomplete or unsafe"
        raise PodiumError(f"{path} cannot be read as a {what} ({reason}).") from None
    if not isinstance(d, dict) or d.get("format") not in formats:
        raise PodiumError(f"{path} is not a {what}.")
    return d
