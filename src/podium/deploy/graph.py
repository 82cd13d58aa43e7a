"""The exported computation as one torch module: uint8 images in, podium's class probabilities out.

``ExportGraph`` holds one ``Member`` per run (a single run, or each member of an ensemble with its blend weight).
For a batch of uint8 images (N, H, W, 3), RGB, at the model's input size, each member normalises with its own mean
and std, runs each fold's network on each TTA view (logits averaged over views, as ``predict_logits`` does), turns
the logits into probabilities with the task's decoder (registered in ``DECODERS``, keyed ``task/coding``), averages
the folds (as ``predict_checkpoints`` does), and the members are blended with their weights (a probability mean,
as the ``mean`` and ``weights`` blends do). Every step is plain torch, so ``torch.onnx.export`` traces it whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from podium.core.errors import PodiumError
from podium.core.registry import Registry
from podium.data.pixels.preprocessing import Preprocessing
from podium.engine.tta import check_views
from podium.tasks.task import Task

# logits (N, outputs) and the class count -> per-class probabilities (N, C), exactly as the task's numpy code
Decoder = Callable[[torch.Tensor, int], torch.Tensor]
DECODERS: Registry[Decoder] = Registry("ONNX probability decoder")


def decoder_key(task: Task) -> str:
    """The registry key of a resolved task (``Checkpoint.resolved_task``): its name and the loss coding its outputs."""
    return f"{task.name}/{task.loss}"


def decoder_for(task: Task) -> Decoder:
    """The decoder of ``task``, or a one-line error naming what cannot be exported."""
    key = decoder_key(task)
    if key not in DECODERS:
        raise PodiumError(f"podium export has no probability decoder for task {key}; exportable: "
                          f"{', '.join(DECODERS)}.")
    return DECODERS.get(key)


def _softmax(logits: torch.Tensor, k: int) -> torch.Tensor:
    return torch.softmax(logits, dim=1)


def _sigmoid(logits: torch.Tensor, k: int) -> torch.Tensor:
    return torch.sigmoid(logits)


def _cumulative(logits: torch.Tensor, k: int) -> torch.Tensor:
    """P(grade > j) made non-increasing (a running minimum, unrolled: K is small), then differences."""
    above = torch.sigmoid(logits)
    cols = [above[:, :1]]
    for j in range(1, above.shape[1]):
        cols.append(torch.minimum(cols[-1], above[:, j:j + 1]))
    ones, zeros = torch.ones_like(above[:, :1]), torch.zeros_like(above[:, :1])
    cum = torch.cat([ones, *cols, zeros], dim=1)
    return cum[:, :-1] - cum[:, 1:]


def _regression(logits: torch.Tensor, k: int) -> torch.Tensor:
    """The score clipped to [0, K-1], its mass split between the two grades around it."""
    s = logits[:, :1].clamp(0, k - 1)
    low = torch.clamp(torch.floor(s), max=k - 2)
    frac = s - low
    grades = torch.arange(k, dtype=logits.dtype, device=logits.device).view(1, k)
    return (grades == low).to(logits.dtype) * (1 - frac) + (grades == low + 1).to(logits.dtype) * frac


DECODERS.register("binary/ce")(_softmax)
DECODERS.register("multiclass/ce")(_softmax)
DECODERS.register("multilabel/bce")(_sigmoid)
DECODERS.register("ordinal/ce")(_softmax)
DECODERS.register("ordinal/cumulative")(_cumulative)
DECODERS.register("ordinal/regression")(_regression)


@dataclass
class Member:
    """One run inside the graph: its fold networks, preprocessing, decoder and blend weight."""

    networks: list[torch.nn.Module]
    prep: Preprocessing
    decoder: Decoder
    weight: float = 1.0


class ExportGraph(torch.nn.Module):
    """uint8 (N, H, W, 3) RGB -> float32 (N, C) probabilities: normalisation, TTA views, decoding, fold average and
    member blend inside one module (see the module docstring). ``nchw=True`` takes (N, 3, H, W) instead.

    ``fold_output`` adds a second output ``fold_probs`` (N, folds, C): each fold's probabilities before the average
    (single runs), from which the parity check recomputes the out-of-fold CV metric."""

    def __init__(self, members: Sequence[Member], num_classes: int, views: Sequence[str] = ("identity",),
                 scales: Sequence[float] = (1.0,), nchw: bool = False, fold_output: bool = False) -> None:
        super().__init__()
        self.fold_output = fold_output
        self.nets = torch.nn.ModuleList([net for m in members for net in m.networks])
        self.layout = [(len(m.networks), m.decoder, float(m.weight)) for m in members]
        total = sum(w for _, _, w in self.layout)
        self.layout = [(n, d, w / total) for n, d, w in self.layout]
        self.k, self.nchw = num_classes, nchw
        self.views = check_views(list(views))
        self.scales = [float(s) for s in scales]
        for i, m in enumerate(members):
            self.register_buffer(f"mean{i}", torch.tensor(m.prep.mean).view(1, 3, 1, 1) * 255.0)
            self.register_buffer(f"inv_std{i}", 1.0 / (torch.tensor(m.prep.std).view(1, 3, 1, 1) * 255.0))

    def forward(self, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Probabilities of a uint8 batch (and each fold's, with ``fold_output``)."""
        x = images.float() if self.nchw else images.permute(0, 3, 1, 2).float()
        out, start, per_fold = None, 0, []
        for i, (n, decode, weight) in enumerate(self.layout):
            xi = (x - getattr(self, f"mean{i}")) * getattr(self, f"inv_std{i}")
            inputs = [self._scaled(view(xi), s) for s in self.scales for view in self.views]
            folds = None
            for net in self.nets[start:start + n]:
                logits = torch.stack([net(v).float() for v in inputs]).mean(0)
                probs = decode(logits, self.k)
                per_fold.append(probs)
                folds = probs if folds is None else folds + probs
            start += n
            member = folds * (weight / n)
            out = member if out is None else out + member
        return (out, torch.stack(per_fold, dim=1)) if self.fold_output else out

    @staticmethod
    def _scaled(x: torch.Tensor, scale: float) -> torch.Tensor:
        return x if scale == 1.0 else F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
