"""Reading images the same way in training and inference: EXIF-rotated, 8-bit, 3-channel RGB."""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")

# cv2 uses its own threads per call; the loader's workers already parallelise across images.
cv2.setNumThreads(0)


class UnreadableImage(ValueError):
    """An image file that cannot be decoded; the message says why."""


def is_image(path: str | os.PathLike[str]) -> bool:
    """Whether the file name has an image extension and is not hidden (``.DS_Store``, macOS's ``._x.png`` AppleDouble
    files: metadata, not images)."""
    name = os.path.basename(str(path))
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode ``path`` into an HxWx3 uint8 RGB array.

    OpenCV decodes fast and applies EXIF orientation; its IMREAD_COLOR flag turns grayscale, palette, RGBA, CMYK and
    16-bit images into 8-bit colour. Pillow is the fallback for what OpenCV cannot open (an animated GIF: its first
    frame).
    """
    return decode_image(np.fromfile(str(path), dtype=np.uint8))  # fromfile + imdecode handles non-ASCII paths


def decode_image(data: np.ndarray | bytes) -> np.ndarray:
    """Decode the bytes of an image file exactly as ``read_image`` does (so checks and training agree)."""
    data = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    if data.size == 0:
        raise UnreadableImage("empty file (0 bytes)")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is not None:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    try:
        with Image.open(io.BytesIO(data.tobytes())) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                im = Image.fromarray(np.clip(arr / max(arr.max(), 1) * 255, 0, 255).astype(np.uint8))
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except UnidentifiedImageError:
        raise UnreadableImage("cannot be decoded as an image (not a known image format)") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure means the file is unreadable
        raise UnreadableImage(f"cannot be decoded as an image ({type(e).__name__}: {e})") from None


def check_image(path: str | os.PathLike[str]) -> str | None:
    """Return why ``path`` is not a usable image, or None when it is."""
    p = Path(path)
    if not p.is_file():
        return "file not found"
    try:
        img = read_image(p)
    except UnreadableImage as e:
        return str(e)
    if img.shape[0] < 2 or img.shape[1] < 2:
        return f"image is only {img.shape[1]}x{img.shape[0]} pixels"
    with open(p, "rb") as f:
        head = f.read(2)
        f.seek(max(0, p.stat().st_size - 1024))
        tail = f.read()
    return truncation(head, tail)


def truncation(head: bytes, tail: bytes) -> str | None:
    """Why a file that starts with ``head`` and ends with ``tail`` is cut short, or None.

    Decoders fill a truncated JPEG with grey and return it without an error, so a JPEG (found by its magic bytes, not
    its name) must end with the end-of-image marker.
    """
    if head[:2] == b"\xff\xd8" and not tail.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "truncated JPEG (no end-of-image marker)"
    return None


def check_images(paths: list[str], workers: int | None = None) -> dict[str, str]:
    """Decode every image once, in parallel; return ``{path: reason}`` for the unusable ones."""
    workers = workers or min(8, (os.cpu_count() or 1) + 1)
    with ThreadPoolExecutor(workers) as pool:  # cv2 and file reads release the GIL
        reasons = list(pool.map(check_image, paths, chunksize=32))
    return {p: r for p, r in zip(paths, reasons) if r is not None}
