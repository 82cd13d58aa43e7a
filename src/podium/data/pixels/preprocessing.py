"""The ``Preprocessing`` record, everything done to an image before the network: input size, resize method,
interpolation, mean and std, and the image ops
(``data.preprocess``, see podium.data.pixels.image_ops) applied to every decoded image before it is resized.

It is resolved from the model's ``pretrained_cfg`` (never hard-coded) by
``podium.models.factory.resolve_preprocessing``, saved in every checkpoint, and applied on the
device to whole uint8 batches, so training, validation and test inference normalise identically.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Preprocessing:
    """How raw images become model inputs.

    ``size`` is the input height, and its width too unless ``width`` is set (a rectangular input, ``hw``).
    ``crop_pct`` is timm's evaluation crop: the ``crop`` resize scales the image to cover ``hw / crop_pct`` and takes
    the centre ``hw``, as the model's pretrained evaluation did. ``pad_fill`` is the ``pad`` resize's gray level (-1:
    the mean colour). ``ops`` and ``op_params`` are the image ops the model was trained with and the values of the
    keys they read (applied by podium.data.pixels.image_ops).
    """

    size: int
    resize: str
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float = 1.0
    ops: tuple[str, ...] = ()
    op_params: tuple[tuple[str, float], ...] = ()
    width: int = 0
    pad_fill: int = -1

    @property
    def hw(self) -> tuple[int, int]:
        """The model's input (height, width)."""
        return self.size, self.width or self.size

    @property
    def size_label(self) -> int | str:
        """The input size as a person writes it: ``128``, or ``288x224`` (height x width) for a rectangle."""
        h, w = self.hw
        return h if h == w else f"{h}x{w}"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for a checkpoint."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["ops"], d["op_params"] = list(self.ops), [[k, float(v)] for k, v in self.op_params]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        """Inverse of ``to_dict`` (older checkpoints have no image ops, width or pad fill)."""
        return cls(int(d["size"]), str(d["resize"]), str(d["interpolation"]), tuple(d["mean"]), tuple(d["std"]),
                   float(d.get("crop_pct", 1.0)), tuple(str(o) for o in d.get("ops", ())),
                   tuple((str(k), float(v)) for k, v in d.get("op_params", ())), int(d.get("width", 0)),
                   int(d.get("pad_fill", -1)))

    def normalize(self, x: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
        """uint8 NCHW batch on any device -> normalised float32 batch on the same device."""
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1) * 255.0
        inv_std = 1.0 / (torch.tensor(self.std, device=x.device).view(1, 3, 1, 1) * 255.0)
        x = x.float()
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return (x - mean) * inv_std
