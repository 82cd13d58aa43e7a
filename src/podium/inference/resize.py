"""The resize an exported model expects, in numpy + OpenCV only: copy this file next to ``model.onnx`` and an app
turns any image into the model's uint8 input exactly as podium does (no podium, no torch).

    meta = read_preprocessing(onnxruntime.InferenceSession("model.onnx"))   # or the model's metadata props
    x = np.stack([prepare(load_rgb("leaf.jpg"), meta)])                       # (N, H, W, 3) uint8, RGB
    probs = session.run(None, {"images": x})[0]

The steps are podium's evaluation path: decode to RGB (EXIF-rotated; 16-bit PNG/TIFF scaled by their own min..max;
DICOM needs podium's ``podium.data.pixels.decoders`` and pydicom), the image ops of ``data.preprocess`` (these
need podium: ``podium.data.pixels.image_ops``), the decoded-image cache's shrink (short side to ``cache_side`` with
INTER_AREA, never up; 0 = off), then the model's resize method with its interpolation:

- ``squash`` / ``squish``: straight to height x width.
- ``crop``: scale so both sides cover height x width / crop_pct (albumentations' SmallestMaxSize), centre crop.
- ``pad``: scale to fit inside height x width (LongestMaxSize), pad centred with ``pad_fill`` (or the mean colour).

OpenCV, not PIL, does the resampling, because podium's pipeline (albumentations) uses OpenCV: PIL's bilinear filter
antialiases and differs by several gray levels. tests/test_export.py checks this file against podium's transform
pixel for pixel.
"""

from __future__ import annotations

import json
import math
from typing import Any

import cv2
import numpy as np

INTERPOLATION = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
                 "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}
METADATA_KEY = "podium.preprocessing"


def read_preprocessing(session: Any) -> dict[str, Any]:
    """The ``podium.preprocessing`` metadata of an onnxruntime session (or a dict of metadata props)."""
    props = session if isinstance(session, dict) else session.get_modelmeta().custom_metadata_map
    return json.loads(props[METADATA_KEY])


def load_rgb(path: str) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB, EXIF-rotated (OpenCV's decoder; PIL for what it cannot open)."""
    return decode_rgb(np.fromfile(path, dtype=np.uint8))


def decode_rgb(data: bytes | np.ndarray) -> np.ndarray:
    """Encoded image bytes as HxWx3 uint8 RGB (raises ValueError when they are no image)."""
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray)) else data
    img = cv2.imdecode(buf, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR) if buf.size else None
    if img is not None and img.dtype != np.uint8:  # 16-bit or float PNG/TIFF: podium scales min..max to 0..255
        lo, hi = float(img.min()), float(img.max())
        img = img.astype(np.float32)
        img = (np.where(img > lo, 255, 0) if hi <= lo else np.clip(np.rint((img - lo) * (255.0 / (hi - lo))), 0, 255))
        img = img.astype(np.uint8)
    if img is not None:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    import io

    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(buf.tobytes())) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.uint8)
    except Exception as e:  # noqa: BLE001 - any decoder failure means "not an image"
        raise ValueError(f"cannot be decoded as an image ({type(e).__name__})") from None


def _scaled(img: np.ndarray, scale: float, interpolation: int) -> np.ndarray:
    h, w = img.shape[:2]
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    return img if (nh, nw) == (h, w) else cv2.resize(img, (nw, nh), interpolation=interpolation)


def shrink(img: np.ndarray, side: int) -> np.ndarray:
    """podium's decoded-image cache: the short side brought down to ``side`` with INTER_AREA (never up)."""
    h, w = img.shape[:2]
    short = min(h, w)
    if side <= 0 or short <= side:
        return img
    nh, nw = max(1, round(h * side / short)), max(1, round(w * side / short))
    return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)


def resize(img: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """The model's resize method (``meta["resize"]``) onto ``meta["height"]`` x ``meta["width"]``."""
    h, w = int(meta["height"]), int(meta["width"])
    flag = INTERPOLATION[meta["interpolation"]]
    method = meta["resize"]
    if method in ("squash", "squish"):
        return img if img.shape[:2] == (h, w) else cv2.resize(img, (w, h), interpolation=flag)
    if method == "crop":
        ch, cw = max(h, math.floor(h / meta["crop_pct"])), max(w, math.floor(w / meta["crop_pct"]))
        img = _scaled(img, max(ch / img.shape[0], cw / img.shape[1]), flag)
        y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
        return img[y0:y0 + h, x0:x0 + w]
    if method == "pad":
        img = _scaled(img, min(h / img.shape[0], w / img.shape[1]), flag)
        fill = meta["pad_fill"]
        color = [round(m * 255) for m in meta["mean"]] if fill < 0 else [fill] * 3
        dh, dw = max(0, h - img.shape[0]), max(0, w - img.shape[1])
        return cv2.copyMakeBorder(img, dh // 2, dh - dh // 2, dw // 2, dw - dw // 2, cv2.BORDER_CONSTANT,
                                  value=color)
    raise ValueError(f"unknown resize method {method!r}")


def apply_ops(img: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """The image ops of ``data.preprocess`` (none for most models; they need podium installed)."""
    if not meta.get("ops"):
        return img
    from podium.data.pixels.image_ops import ImageOps

    return ImageOps(tuple(meta["ops"]), tuple((k, float(v)) for k, v in meta.get("op_params", []))).apply(img)


def prepare(img: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """An HxWx3 uint8 RGB image as the model's input: HxWx3 uint8 at the model's size (stack them for a batch)."""
    out = resize(shrink(apply_ops(img, meta), int(meta.get("cache_side", 0))), meta)
    return np.ascontiguousarray(out)
