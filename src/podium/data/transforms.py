"""Albumentations pipelines built from registered ops: ``create_transform(prep, aug, train)``.

Transforms stop at a uint8 image of the model's size; normalisation happens on the device (see Preprocessing).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import albumentations as A
import cv2
import numpy as np

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


class ShiftScaleRotate(A.ImageOnlyTransform):
    """Random shift, scale and rotation as one ``cv2.warpAffine`` with reflected borders (image-only tasks need no
    mask or box support, which is what makes albumentations' Affine several times slower per image)."""

    def __init__(self, scale: float, shift: float, rotate: float, interpolation: int, p: float = 0.5) -> None:
        super().__init__(p=p)
        self.scale, self.shift, self.rotate, self.interpolation = scale, shift, rotate, interpolation

    def get_params(self) -> dict[str, Any]:
        """Draw the angle, scale and shift."""
        r = self.py_random
        return {"angle": r.uniform(-self.rotate, self.rotate), "scale": r.uniform(1 - self.scale, 1 + self.scale),
                "dx": r.uniform(-self.shift, self.shift), "dy": r.uniform(-self.shift, self.shift)}

    def apply(self, img: np.ndarray, angle: float = 0.0, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0,
              **params: Any) -> np.ndarray:
        """Warp ``img``."""
        h, w = img.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle, scale)
        m[:, 2] += (dx * w, dy * h)
        return cv2.warpAffine(img, m, (w, h), flags=self.interpolation, borderMode=cv2.BORDER_REFLECT_101)


@AUGMENTATIONS.register("affine")
def affine(prep: Preprocessing, aug: AugConfig) -> A.BasicTransform:
    """Small shift (6%), scale (10%) and rotation (aug.rotate degrees) with reflected borders, half of the time."""
    return ShiftScaleRotate(0.1, 0.06, aug.rotate, interpolation(prep), p=0.5)


_GRAY = np.array([0.299, 0.587, 0.114])
_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def color_matrix(brightness: float, contrast: float, saturation: float, hue: float, mean_gray: float) -> np.ndarray:
    """The 3x4 matrix of a colour jitter on RGB pixels: saturation (blend with the gray value), hue (rotation about
    the gray axis in YIQ space, by ``hue`` turns), brightness (scale) and contrast (about the image's mean gray)."""
    sat = saturation * np.eye(3) + (1 - saturation) * np.outer(np.ones(3), _GRAY)
    c, s = math.cos(2 * math.pi * hue), math.sin(2 * math.pi * hue)
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    lin = contrast * brightness * (np.linalg.inv(_TO_YIQ) @ rot @ _TO_YIQ @ sat)
    offset = (1 - contrast) * brightness * mean_gray
    return np.hstack([lin, np.full((3, 1), offset)]).astype(np.float32)


class ColorJitter(A.ImageOnlyTransform):
    """Brightness, contrast, saturation and hue jitter of a uint8 RGB image as one linear map (``cv2.transform``)
    instead of four passes; saturates to 0..255."""

    def __init__(self, strength: float, hue: float, p: float = 0.8) -> None:
        super().__init__(p=p)
        self.strength, self.hue = strength, hue

    def get_params(self) -> dict[str, Any]:
        """Draw the four factors."""
        r, s = self.py_random, self.strength
        return {"factors": (r.uniform(1 - s, 1 + s), r.uniform(1 - s, 1 + s), r.uniform(1 - s, 1 + s),
                            r.uniform(-self.hue, self.hue))}

    def apply(self, img: np.ndarray, factors: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 0.0),
              **params: Any) -> np.ndarray:
        """Jitter ``img``."""
        mean_gray = float(np.dot(cv2.mean(img)[:3], _GRAY))
        return cv2.transform(img, color_matrix(*factors, mean_gray))


@AUGMENTATIONS.register("color")
def color(prep: Preprocessing, aug: AugConfig) -> A.BasicTransform:
    """Brightness, contrast, saturation and a little hue jitter (80% of the time)."""
    s = aug.strength
    return ColorJitter(s, min(0.05, s / 4), p=0.8)


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
