"""Albumentations pipelines built from registered ops: ``create_transform(prep, aug, train)``.

Transforms stop at a uint8 image of the model's size; normalisation happens on the device (see Preprocessing).
Geometric ops (crop, flips, turns, affine) are matrices: a run of them is drawn op by op and applied as one
``cv2.warpAffine`` (FusedWarp), so an augmented image costs one interpolation, not one per op.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np

from podium.config import AugConfig
from podium.core.errors import PodiumError
from podium.core.registry import Registry
from podium.data.pixels.preprocessing import Preprocessing
from podium.data.training.resizes import RESIZES, interpolation, presized

AugOp = Callable[[Preprocessing, AugConfig], "A.BasicTransform | Warp"]
AUGMENTATIONS: Registry[AugOp] = Registry("augmentation")


class Warp:
    """A geometric augmentation as a matrix, so that a run of them costs one ``cv2.warpAffine`` (see FusedWarp).

    ``sample(rng, h, w)`` draws the op's parameters for an h x w input and returns the 3x3 map from input to output
    pixel coordinates (pixel centres at integers, as in cv2) with the output height and width; the op applies with
    probability ``p``.
    """

    p: float = 1.0

    def sample(self, rng: random.Random, h: int, w: int) -> tuple[np.ndarray, int, int]:
        """This op's matrix and output size for an h x w input."""
        raise NotImplementedError


_EYE = np.eye(3)


def _scale(sx: float, sy: float) -> np.ndarray:
    """Resize by (sx, sy) the way cv2.resize maps pixel centres: ``(x + 0.5) * s - 0.5``."""
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])


def _shift(dx: float, dy: float) -> np.ndarray:
    return np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1.0]])


class RandomResizedCrop(Warp):
    """A crop of ``scale`` of the area with aspect ratio in ``ratio`` (log-uniform), resized to ``hw`` (height,
    width); albumentations' and torchvision's sampling, including the centre-crop fall-back after 10 tries. For a
    rectangular output the ratios are taken about the output's own aspect (width / height), so a crop is distorted
    no more than for a square one."""

    def __init__(self, hw: tuple[int, int], scale: tuple[float, float], ratio: tuple[float, float] = (3 / 4, 4 / 3)
                 ) -> None:
        aspect = hw[1] / hw[0]
        self.hw, self.scale, self.ratio = hw, scale, (ratio[0] * aspect, ratio[1] * aspect)

    def crop(self, rng: random.Random, h: int, w: int) -> tuple[int, int, int, int]:
        """(x0, y0, width, height) of the crop."""
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            area = rng.uniform(*self.scale) * h * w
            aspect = math.exp(rng.uniform(*log_ratio))
            cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                return rng.randint(0, w - cw), rng.randint(0, h - ch), cw, ch
        cw, ch = w, h
        if w / h < self.ratio[0]:
            ch = round(w / self.ratio[0])
        elif w / h > self.ratio[1]:
            cw = round(h * self.ratio[1])
        return (w - cw) // 2, (h - ch) // 2, cw, ch

    def sample(self, rng: random.Random, h: int, w: int) -> tuple[np.ndarray, int, int]:
        """Crop, then resize to the model's size."""
        x0, y0, cw, ch = self.crop(rng, h, w)
        oh, ow = self.hw
        return _scale(ow / cw, oh / ch) @ _shift(-x0, -y0), oh, ow


class Flip(Warp):
    """A mirror image, left-right (``horizontal``) or top-bottom."""

    def __init__(self, horizontal: bool, p: float = 0.5) -> None:
        self.horizontal, self.p = horizontal, p

    def sample(self, rng: random.Random, h: int, w: int) -> tuple[np.ndarray, int, int]:
        """The mirror matrix."""
        if self.horizontal:
            return np.array([[-1, 0, w - 1], [0, 1, 0], [0, 0, 1.0]]), h, w
        return np.array([[1, 0, 0], [0, -1, h - 1], [0, 0, 1.0]]), h, w


class Rotate90(Warp):
    """1, 2 or 3 quarter turns counter-clockwise (``np.rot90``), or none; non-square images swap height and width."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def sample(self, rng: random.Random, h: int, w: int) -> tuple[np.ndarray, int, int]:
        """k quarter turns, k uniform in 0..3."""
        m = np.eye(3)
        for _ in range(rng.randint(0, 3)):
            m = np.array([[0, 1, 0], [-1, 0, w - 1], [0, 0, 1.0]]) @ m
            h, w = w, h
        return m, h, w


class ShiftScaleRotate(Warp):
    """A random rotation (up to ``rotate`` degrees) and zoom (1 +- ``scale``) about the centre, then a shift of up to
    ``shift`` of the side; borders are reflected."""

    def __init__(self, scale: float, shift: float, rotate: float, p: float = 0.5) -> None:
        self.scale, self.shift, self.rotate, self.p = scale, shift, rotate, p

    @staticmethod
    def matrix(h: int, w: int, angle: float, scale: float, dx: float, dy: float) -> np.ndarray:
        """The 3x3 matrix of one draw (angle in degrees, shifts as fractions of the side)."""
        m = np.vstack([cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle, scale), [0, 0, 1.0]])
        return _shift(dx * w, dy * h) @ m

    def sample(self, rng: random.Random, h: int, w: int) -> tuple[np.ndarray, int, int]:
        """Draw the angle, zoom and shift."""
        angle, scale = rng.uniform(-self.rotate, self.rotate), rng.uniform(1 - self.scale, 1 + self.scale)
        dx, dy = rng.uniform(-self.shift, self.shift), rng.uniform(-self.shift, self.shift)
        return self.matrix(h, w, angle, scale, dx, dy), h, w


def _box_resize(img: np.ndarray, m: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray | None:
    """``warp`` for maps made of integer crops, resizes, flips and quarter turns, as slicing, ``cv2.resize`` and
    flips (cv2.resize is 3-8x faster than warpAffine); None for any other map."""
    (a00, a01, b0), (a10, a11, b1) = m[:2].tolist()
    turned = a00 == 0 and a11 == 0  # output x follows input y
    if not turned and (a01 != 0 or a10 != 0):
        return None
    # The output's pixel edges (-0.5 .. side - 0.5) mapped back onto the input must fall on pixel edges too:
    # out_x = ax * in_u + b0 and out_y = ay * in_v + b1, where (u, v) is (x, y), or (y, x) when turned.
    h, w = size
    ax, ay = (a01, a10) if turned else (a00, a11)
    u0, u1 = sorted(((-0.5 - b0) / ax + 0.5, (w - 0.5 - b0) / ax + 0.5))
    v0, v1 = sorted(((-0.5 - b1) / ay + 0.5, (h - 0.5 - b1) / ay + 0.5))
    edges = [round(e) for e in (u0, u1, v0, v1)]
    if max(abs(e - r) for e, r in zip((u0, u1, v0, v1), edges)) > 1e-6:
        return None
    (x0, x1, y0, y1) = (edges[2], edges[3], edges[0], edges[1]) if turned else edges
    if x0 < 0 or y0 < 0 or x1 > img.shape[1] or y1 > img.shape[0] or x1 <= x0 or y1 <= y0:
        return None
    out = img[y0:y1, x0:x1]
    if turned:
        out = out.transpose(1, 0, 2)
    if out.shape[:2] != (h, w):
        shrink = out.shape[0] * out.shape[1] > 4 * h * w  # INTER_AREA averages, like the anti-aliased warp below
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA if shrink else interpolation)
    code = {(True, True): -1, (True, False): 1, (False, True): 0}.get((ax < 0, ay < 0))
    return np.ascontiguousarray(out if code is None else cv2.flip(out, code))


def warp(img: np.ndarray, m: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    """``img`` mapped by the 3x3 matrix ``m`` onto an image of ``size`` (height, width), reflecting at the borders.

    Crops, resizes, flips and quarter turns are done exactly that way, with the model's interpolation. Anything with
    a rotation or shear goes through ``cv2.warpAffine``, bilinear (bicubic costs 3x more there; torchvision's
    RandomAffine is bilinear too). warpAffine samples without averaging, so a map that shrinks by more than 2x first
    shrinks the image with INTER_AREA (an anti-aliased copy) and warps the rest of the way.
    """
    h, w = size
    if img.shape[:2] == (h, w) and np.array_equal(m, _EYE):
        return img
    fast = _box_resize(img, m, size, interpolation)
    if fast is not None:
        return fast
    zoom = math.sqrt(abs(np.linalg.det(m[:2, :2])))
    if zoom < 0.5:
        ih, iw = img.shape[:2]
        nh, nw = max(1, round(ih * zoom)), max(1, round(iw * zoom))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        m = m @ np.linalg.inv(_scale(nw / iw, nh / ih))
    flags = cv2.INTER_NEAREST if interpolation == cv2.INTER_NEAREST else cv2.INTER_LINEAR
    if img.ndim == 3 and img.shape[2] == 3:  # OpenCV's 4-channel path is vectorised: 1.7x faster with the round trip
        four = cv2.warpAffine(cv2.cvtColor(img, cv2.COLOR_RGB2RGBA), m[:2], (w, h), flags=flags,
                              borderMode=cv2.BORDER_REFLECT_101)
        return cv2.cvtColor(four, cv2.COLOR_RGBA2RGB)
    return cv2.warpAffine(img, m[:2], (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT_101)


class FusedWarp(A.ImageOnlyTransform):
    """A run of Warp ops drawn in order and applied as one warpAffine: one interpolation and one pass over the output
    pixels instead of one per op, which is most of the per-image cost once decoding is cached."""

    def __init__(self, ops: Sequence[Warp], interpolation: int) -> None:
        super().__init__(p=1.0)
        self.ops, self.interpolation = list(ops), interpolation

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """Draw every op (each with its probability) and compose their matrices."""
        h, w = params["shape"][:2]
        m = np.eye(3)
        for op in self.ops:
            if op.p >= 1 or self.py_random.random() < op.p:
                step, h, w = op.sample(self.py_random, h, w)
                m = step @ m
        return {"matrix": m, "size": (h, w)}

    def apply(self, img: np.ndarray, matrix: np.ndarray | None = None, size: tuple[int, int] | None = None,
              **params: Any) -> np.ndarray:
        """Warp ``img``."""
        if matrix is None or size is None:
            return img
        return warp(img, matrix, size, self.interpolation)


@AUGMENTATIONS.register("random_resized_crop")
def random_resized_crop(prep: Preprocessing, aug: AugConfig) -> Warp:
    """A random crop of scale_min..1 of the area, resized to the model's size (replaces the plain resize)."""
    return RandomResizedCrop(prep.hw, (aug.scale_min, 1.0))


@AUGMENTATIONS.register("hflip")
def hflip(prep: Preprocessing, aug: AugConfig) -> Warp:
    """Horizontal flip with probability 0.5."""
    return Flip(horizontal=True)


@AUGMENTATIONS.register("vflip")
def vflip(prep: Preprocessing, aug: AugConfig) -> Warp:
    """Vertical flip with probability 0.5 (for top-down photos, leaves, slides)."""
    return Flip(horizontal=False)


@AUGMENTATIONS.register("rotate90")
def rotate90(prep: Preprocessing, aug: AugConfig) -> Warp:
    """A random multiple of 90 degrees, half of the time."""
    return Rotate90(p=0.5)


@AUGMENTATIONS.register("affine")
def affine(prep: Preprocessing, aug: AugConfig) -> Warp:
    """Small shift (6%), scale (10%) and rotation (aug.rotate degrees) with reflected borders, half of the time."""
    return ShiftScaleRotate(0.1, 0.06, aug.rotate, p=0.5)


_GRAY = np.array([0.299, 0.587, 0.114])
_GRAY_ROWS = np.outer(np.ones(3), _GRAY)
_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_FROM_YIQ = np.linalg.inv(_TO_YIQ)


def color_matrix(brightness: float, contrast: float, saturation: float, hue: float, mean_gray: float) -> np.ndarray:
    """The 3x4 matrix of a colour jitter on RGB pixels: saturation (blend with the gray value), hue (rotation about
    the gray axis in YIQ space, by ``hue`` turns), brightness (scale) and contrast (about the image's mean gray)."""
    sat = saturation * _EYE + (1 - saturation) * _GRAY_ROWS
    c, s = math.cos(2 * math.pi * hue), math.sin(2 * math.pi * hue)
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    out = np.empty((3, 4), np.float32)
    out[:, :3] = contrast * brightness * (_FROM_YIQ @ rot @ _TO_YIQ @ sat)
    out[:, 3] = (1 - contrast) * brightness * mean_gray
    return out


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


@AUGMENTATIONS.register("gridmask")
def gridmask(prep: Preprocessing, aug: AugConfig) -> A.BasicTransform:
    """GridMask: a regular grid of square holes (aug.gridmask_ratio of each cell), randomly offset, half of the time
    (albumentations' GridDropout)."""
    return A.GridDropout(ratio=aug.gridmask_ratio, random_offset=True, p=0.5)


def load_pipeline(path: str) -> A.Compose:
    """A training pipeline saved with albumentations' ``A.save`` (YAML or JSON, by extension), checked: it must end
    in uint8 images, because podium normalises whole batches on the device (see Preprocessing)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise PodiumError(f"aug.pipeline={path}: no such file; save a pipeline with A.save(pipeline, PATH).")
    try:
        pipeline = A.load(str(p), data_format="yaml" if p.suffix.lower() in (".yaml", ".yml") else "json")
    except Exception as e:  # noqa: BLE001 - albumentations raises many kinds for a bad file
        raise PodiumError(f"aug.pipeline={path} is not an albumentations pipeline saved with A.save "
                          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}).") from None
    if not isinstance(pipeline, A.Compose):
        pipeline = A.Compose([pipeline])
    banned = [type(t).__name__ for t in pipeline.transforms if type(t).__name__ in ("Normalize", "ToTensorV2",
                                                                                      "ToFloat")]
    if banned:
        raise PodiumError(f"aug.pipeline={path} contains {', '.join(banned)}: remove it; podium normalises batches "
                          "on the device with the model's own mean and std.")
    return pipeline


def seed_transform(transform: A.Compose, seed: int) -> None:
    """Seed ``transform`` from ``seed``: all its ops draw, in order, from one pair of generators.

    albumentations' own ``set_random_seed`` gives every op a generator with the same seed, so ops draw the same
    numbers: two flips with p=0.5 would always flip together, and a crop's size would decide whether the colour jitter
    applies. ``Compose.set_random_state`` hands one pair of generators to every op (no internals overwritten); one
    shared stream is also cheaper than one new pair of generators per op and image.
    """
    transform.set_random_state(np.random.default_rng(seed), random.Random(seed))  # public API, shared by every op


def create_transform(prep: Preprocessing, aug: AugConfig | None = None, train: bool = False) -> A.Compose:
    """The training pipeline (``aug`` ops in order) or the evaluation pipeline (the model's resize only).

    With ``aug.presize`` and ``random_resized_crop``, training first resizes with ``model.resize`` to the presize
    (fastai's presizing), so squash, crop and pad act in training as in evaluation.

    Consecutive geometric ops (Warp) are fused into one FusedWarp.
    """
    if train and aug is not None and aug.pipeline:
        return A.Compose([*load_pipeline(aug.pipeline).transforms, *RESIZES.get(prep.resize)(prep)])
    ops: list[A.BasicTransform] = []
    names = list(aug.ops) if (train and aug is not None) else []
    if "random_resized_crop" not in names:
        ops += RESIZES.get(prep.resize)(prep)
    elif aug is not None and aug.presize > 0:  # fastai's presizing: the resize method first, the random crop within
        ops += RESIZES.get(prep.resize)(presized(prep, aug.presize))
    run: list[Warp] = []
    for name in names:
        op = AUGMENTATIONS.get(name)(prep, aug)  # type: ignore[arg-type]
        if isinstance(op, Warp):
            run.append(op)
            continue
        if run:
            ops.append(FusedWarp(run, interpolation(prep)))
            run = []
        ops.append(op)
    if run:
        ops.append(FusedWarp(run, interpolation(prep)))
    return A.Compose(ops)


def check_train_transform(prep: Preprocessing, aug: AugConfig) -> None:
    """The training pipeline for the model's resolved preprocessing ``prep`` builds (an ``aug.pipeline`` file that is
    missing or unusable stops here) and, for a rectangular input, keeps every image at that height x width (a quarter
    turn would make a batch of mixed shapes mid-run): it is drawn on dummy images of several shapes, with several
    seeds."""
    transform = create_transform(prep, aug, train=True)
    hw = prep.hw
    if hw[0] == hw[1]:
        return  # a square input keeps its shape under every op
    for seed in range(16):
        seed_transform(transform, seed)
        for shape in ((hw[0] + 37, hw[1] + 11), (hw[1] + 5, hw[0] + 29)):
            out = transform(image=np.zeros((*shape, 3), np.uint8))["image"].shape[:2]
            if tuple(out) != hw:
                what = f"aug.pipeline={aug.pipeline}" if aug.pipeline else f"aug.ops={','.join(aug.ops)}"
                raise PodiumError(f"{what} gives {out[0]}x{out[1]} training images for model.img_size="
                                  f"{hw[0]}x{hw[1]} (height x width); drop rotate90 (or put it before "
                                  "random_resized_crop), or use a square size.")
