"""Albumentations pipelines built from registered ops: ``create_transform(prep, aug, train)``.

Transforms stop at a uint8 image of the model's size; normalisation happens on the device (see Preprocessing).
"""

from __future__ import annotations

from collections.abc import Callable

import albumentations as A
import cv2

from podium.config import AugConfig
from podium.errors import PodiumError
from podium.models.preprocessing import Preprocessing
from podium.registry import Registry

INTERPOLATION = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}

AugOp = Callable[[Preprocessing, AugConfig], A.BasicTransform]
AUGMENTATIONS: Registry[AugOp] = Registry("augmentation")
RESIZES: Registry[Callable[[Preprocessing], list[A.BasicTransform]]] = Registry("resize method")


def interpolation(prep: Preprocessing) -> int:
    """The cv2 flag for the model's interpolation."""
    if prep.interpolation not in INTERPOLATION:
        raise PodiumError(f"Unknown interpolation {prep.interpolation!r}; choose from {', '.join(INTERPOLATION)}.")
    return INTERPOLATION[prep.interpolation]


@RESIZES.register("squash")
def squash(prep: Preprocessing) -> list[A.BasicTransform]:
    """Resize to size x size, ignoring the aspect ratio (keeps every lesion at the border)."""
    return [A.Resize(prep.size, prep.size, interpolation=interpolation(prep))]


@RESIZES.register("crop")
def crop(prep: Preprocessing) -> list[A.BasicTransform]:
    """Resize the short side to size, then take the centre square."""
    return [A.SmallestMaxSize(prep.size, interpolation=interpolation(prep)), A.CenterCrop(prep.size, prep.size)]


@AUGMENTATIONS.register("random_resized_crop")
def random_resized_crop(prep: Preprocessing, aug: AugConfig) -> A.BasicTransform:
    """A random crop of scale_min..1 of the area, resized to the model's size (replaces the plain resize)."""
    return A.RandomResizedCrop((prep.size, prep.size), scale=(aug.scale_min, 1.0), interpolation=interpolation(prep))


@AUGMENTATIONS.register("hflip")
def hflip(prep: Preprocessing, aug: AugConfig) -> A.BasicTransform:
    """Horizontal flip with probability 0.5."""
    return A.HorizontalFlip(p=0.5)


@AUGMENTATIONS.register("vflip")
def vflip(prep: Preprocessing, aug: AugConfig) -> A.BasicTransform:
    """Vertical flip with probability 0.5 (for top-down photos, leaves, slides)."""
    return A.VerticalFlip(p=0.5)


@AUGMENTATIONS.register("rotate90")
def rotate90(prep: Preprocessing, aug: AugConfig) -> A.BasicTransform:
    """A random multiple of 90 degrees."""
    return A.RandomRotate90(p=0.5)


@AUGMENTATIONS.register("affine")
def affine(prep: Preprocessing, aug: AugConfig) -> A.BasicTransform:
    """Small shift, scale and rotation with reflected borders."""
    return A.Affine(scale=(0.9, 1.1), translate_percent=(-0.06, 0.06), rotate=(-aug.rotate, aug.rotate),
                    border_mode=cv2.BORDER_REFLECT_101, p=0.5)


@AUGMENTATIONS.register("color")
def color(prep: Preprocessing, aug: AugConfig) -> A.BasicTransform:
    """Brightness, contrast, saturation and a little hue jitter."""
    s = aug.strength
    return A.ColorJitter(brightness=s, contrast=s, saturation=s, hue=min(0.05, s / 4), p=0.8)


@AUGMENTATIONS.register("blur")
def blur(prep: Preprocessing, aug: AugConfig) -> A.BasicTransform:
    """Occasional slight Gaussian blur."""
    return A.GaussianBlur(blur_limit=(3, 5), p=0.2)


def create_transform(prep: Preprocessing, aug: AugConfig | None = None, train: bool = False) -> A.Compose:
    """The training pipeline (``aug`` ops in order) or the evaluation pipeline (the model's resize only)."""
    ops: list[A.BasicTransform] = []
    names = list(aug.ops) if (train and aug is not None) else []
    if "random_resized_crop" not in names:
        ops += RESIZES.get(prep.resize)(prep)
    ops += [AUGMENTATIONS.get(name)(prep, aug) for name in names]  # type: ignore[arg-type]
    return A.Compose(ops)
