"""The resize methods (``model.resize``, registered in ``RESIZES``) that bring an image to the model's input size,
and the cv2 interpolation of the model's preprocessing: the last step of every training and evaluation pipeline."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import albumentations as A
import cv2

from podium.core.errors import PodiumError
from podium.core.registry import Registry
from podium.data.pixels.preprocessing import Preprocessing

INTERPOLATION = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}

RESIZES: Registry[Callable[[Preprocessing], list[A.BasicTransform]]] = Registry("resize method")


def interpolation(prep: Preprocessing) -> int:
    """The cv2 flag for the model's interpolation."""
    if prep.interpolation not in INTERPOLATION:
        raise PodiumError(f"Unknown interpolation {prep.interpolation!r}; choose from {', '.join(INTERPOLATION)}.")
    return INTERPOLATION[prep.interpolation]


@RESIZES.register("squash")
def squash(prep: Preprocessing) -> list[A.BasicTransform]:
    """Resize to the model's height x width, ignoring the aspect ratio (keeps every lesion at the border)."""
    return [A.Resize(*prep.hw, interpolation=interpolation(prep))]


RESIZES.register("squish")(squash)  # fastai's name for the same thing


@RESIZES.register("pad")
def pad(prep: Preprocessing) -> list[A.BasicTransform]:
    """Scale the image to fit inside height x width, then pad it to a centred height x width with
    ``model.pad_fill`` (default: the model's mean colour, zero after normalisation): the whole image, undistorted
    (letterboxing)."""
    fill = tuple(round(m * 255) for m in prep.mean) if prep.pad_fill < 0 else (prep.pad_fill,) * 3
    h, w = prep.hw
    return [A.LongestMaxSize(max_size_hw=(h, w), interpolation=interpolation(prep)),
            A.PadIfNeeded(h, w, border_mode=cv2.BORDER_CONSTANT, fill=fill)]


@RESIZES.register("crop")
def crop(prep: Preprocessing) -> list[A.BasicTransform]:
    """Scale the image to cover height x width / crop_pct (timm's evaluation crop), then take the centre
    height x width."""
    h, w = prep.hw
    cover = (max(h, math.floor(h / prep.crop_pct)), max(w, math.floor(w / prep.crop_pct)))
    return [A.SmallestMaxSize(max_size_hw=cover, interpolation=interpolation(prep)), A.CenterCrop(h, w)]


def presized(prep: Preprocessing, factor: float) -> Preprocessing:
    """``prep`` at ``factor`` times its input size (``aug.presize``: what training resizes to before cropping)."""
    h, w = prep.hw
    return dataclasses.replace(prep, size=round(h * factor), width=round(w * factor) if prep.width else 0)
