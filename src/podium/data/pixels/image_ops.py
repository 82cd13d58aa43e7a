"""Image preprocessing ops (``data.preprocess``), applied to every decoded image before it is shrunk and cached.

Each op is registered in ``IMAGE_OPS`` as a function ``(rgb uint8 HxWx3, ImageOps) -> rgb uint8 HxWx3`` and names
the config keys it reads (``keys``). The list and those keys' values are stored in the model's ``Preprocessing``
(hence in every checkpoint), are part of the decoded-image cache's key, and are applied by the one image reader of
training, prediction and ``podium inspect`` (``ImageOps.read``), so a model always sees the images it was trained on.

- ``crop_black``: crop the dark border around a retina or a scan (rows and columns whose brightest pixel is at or
  below ``data.black_tolerance``); an all-dark image is kept whole.
- ``circle``: black outside the circle inscribed in the image (after ``crop_black``: the retina's disc).
- ``ben_graham``: 4 x (image - Gaussian blur) + 128, the blur's sigma ``data.ben_graham_sigma`` x the short side
  (Ben Graham's Kaggle diabetic-retinopathy preprocessing, as in the APTOS notebooks): local contrast, lighting gone.
- ``clahe``: contrast-limited adaptive histogram equalisation of the lightness (``data.clahe_clip``, 8x8 tiles).
- ``gray``: a single gray channel replicated to three (scans stored in colour).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from podium.config import DataConfig
from podium.core.registry import Registry
from podium.data.pixels.images import read_image

if TYPE_CHECKING:
    from podium.data.pixels.preprocessing import Preprocessing


@dataclass(frozen=True)
class ImageOp:
    """A registered op: the function and the ``data.*`` keys whose values it reads from ``ImageOps.params``."""

    fn: Callable[[np.ndarray, ImageOps], np.ndarray]
    keys: tuple[str, ...] = ()


IMAGE_OPS: Registry[ImageOp] = Registry("preprocessing op")


@dataclass(frozen=True)
class ImageOps:
    """An ordered list of ops with the parameter values they read; picklable (DataLoader workers carry it)."""

    names: tuple[str, ...] = ()
    params: tuple[tuple[str, float], ...] = field(default=())

    def param(self, key: str) -> float:
        """The value of ``data.<key>`` this list was configured with."""
        return dict(self.params)[key]

    def apply(self, img: np.ndarray) -> np.ndarray:
        """The image after every op, in order."""
        for name in self.names:
            img = IMAGE_OPS.get(name).fn(img, self)
        return np.ascontiguousarray(img)

    def read(self, path: str | os.PathLike[str]) -> np.ndarray:
        """Decode ``path`` (``read_image``) and apply the ops: the one image reader of training and prediction."""
        return self.apply(read_image(path))

    def key(self) -> str:
        """A short hash of the ops and their parameters for the cache's store name; empty without ops."""
        if not self.names:
            return ""
        return hashlib.sha1(json.dumps([self.names, self.params]).encode()).hexdigest()[:10]


def image_ops(cfg: DataConfig) -> ImageOps:
    """The configured ops with the values of the keys they read."""
    keys = dict.fromkeys(k for n in cfg.preprocess for k in IMAGE_OPS.get(n).keys)
    return ImageOps(tuple(cfg.preprocess), tuple((k, float(getattr(cfg, k))) for k in keys))


def ops_of(prep: Preprocessing) -> ImageOps:
    """The image ops stored in a model's preprocessing."""
    return ImageOps(tuple(prep.ops), tuple((str(k), float(v)) for k, v in prep.op_params))


def _op(name: str, *keys: str) -> Callable[[Callable[[np.ndarray, ImageOps], np.ndarray]], Any]:
    def wrap(fn: Callable[[np.ndarray, ImageOps], np.ndarray]) -> Callable[[np.ndarray, ImageOps], np.ndarray]:
        IMAGE_OPS.register(name)(ImageOp(fn, keys))
        return fn

    return wrap


@_op("crop_black", "black_tolerance")
def crop_black(img: np.ndarray, ops: ImageOps) -> np.ndarray:
    """The bounding box of the pixels brighter than the tolerance; the image itself when all are dark."""
    bright = img.max(axis=2) > ops.param("black_tolerance")
    rows, cols = np.flatnonzero(bright.any(axis=1)), np.flatnonzero(bright.any(axis=0))
    if len(rows) == 0:
        return img
    return img[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


@_op("circle")
def circle(img: np.ndarray, ops: ImageOps) -> np.ndarray:
    """Black outside the circle inscribed in the image."""
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (w // 2, h // 2), min(h, w) // 2, 1, thickness=-1)
    return img * mask[:, :, None]


@_op("ben_graham", "ben_graham_sigma")
def ben_graham(img: np.ndarray, ops: ImageOps) -> np.ndarray:
    """4 x (image - Gaussian blur) + 128, saturated to 0..255."""
    sigma = max(ops.param("ben_graham_sigma") * min(img.shape[:2]), 0.5)
    return cv2.addWeighted(img, 4, cv2.GaussianBlur(img, (0, 0), sigma), -4, 128)


@_op("clahe", "clahe_clip")
def clahe(img: np.ndarray, ops: ImageOps) -> np.ndarray:
    """CLAHE on the L channel of Lab (gray images stay gray)."""
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
    lab[:, :, 0] = cv2.createCLAHE(clipLimit=ops.param("clahe_clip"), tileGridSize=(8, 8)).apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


@_op("gray")
def gray(img: np.ndarray, ops: ImageOps) -> np.ndarray:
    """One gray channel, replicated to three."""
    return np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
