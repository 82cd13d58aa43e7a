"""Reading images the same way in training and inference: EXIF-rotated, 8-bit, 3-channel RGB."""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from podium.data.pixels.decoders import HEAD_BYTES, UnreadableImage, decoder_for, extensions

_COMMON = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
IMAGE_EXTENSIONS = _COMMON + tuple(e for e in extensions() if e not in _COMMON)  # + DICOM's

# cv2 uses its own threads per call; the loader's workers already parallelise across images.
cv2.setNumThreads(0)


def is_image(path: str | os.PathLike[str]) -> bool:
    """Whether the file name has an image extension and is not hidden (``.DS_Store``, macOS's ``._x.png`` AppleDouble
    files: metadata, not images)."""
    name = os.path.basename(str(path))
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


# JPEG decoders scale by 1/2, 1/4 and 1/8 inside the inverse DCT, which skips most of the decoding work.
_REDUCED = {8: cv2.IMREAD_REDUCED_COLOR_8, 4: cv2.IMREAD_REDUCED_COLOR_4, 2: cv2.IMREAD_REDUCED_COLOR_2}
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


@dataclass(frozen=True)
class Header:
    """What a file's header says, without decoding pixels: Pillow's colour mode and the size as displayed (after
    the EXIF orientation, which every podium decode applies)."""

    mode: str
    width: int
    height: int
    jpeg: bool


def read_header(data: bytes | np.ndarray) -> Header | None:
    """The header of an image file's bytes; None when Pillow cannot parse it (the decode step says why)."""
    raw = data.tobytes() if isinstance(data, np.ndarray) else data
    try:
        with Image.open(io.BytesIO(raw)) as im:
            mode, (w, h) = im.mode, im.size
            fmt = im.format
            orientation = im.getexif().get(0x0112, 1) if fmt in ("JPEG", "MPO", "TIFF", "WEBP", "PNG") else 1
    except Exception:  # noqa: BLE001 - the decode step reports unreadable files; the header is informative only
        return None
    # Pillow opens 16-bit colour PNGs as 8-bit RGB; the bit depth byte of the PNG header tells the truth
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) > 24 and raw[24] == 16 and "16" not in mode:
        mode += ";16"
    if orientation in _ROTATED:
        w, h = h, w
    return Header(mode, int(w), int(h), raw[:2] == b"\xff\xd8")


def reduction(width: int, height: int, min_side: int) -> int:
    """The largest JPEG decode reduction (8, 4, 2 or 1) that keeps the short side at ``min_side`` px or more (the
    decoder rounds up, so ``short // k`` is a floor on what it returns); 1 when ``min_side`` is 0."""
    short = min(width, height)
    if min_side <= 0:
        return 1
    return next((k for k in _REDUCED if short // k >= min_side), 1)


def read_image(path: str | os.PathLike[str], min_side: int = 0) -> np.ndarray:
    """Decode ``path`` into an HxWx3 uint8 RGB array.

    OpenCV decodes fast and applies EXIF orientation; its IMREAD_COLOR flag turns grayscale, palette, RGBA and CMYK
    images into 8-bit colour. DICOM and 16-bit PNG/TIFF go through their decoders (``decoders.py``), which scale by
    the window or the image's own range. Pillow is the fallback for what OpenCV cannot open (an animated GIF: its first
    frame). With ``min_side`` a JPEG is decoded at 1/2, 1/4 or 1/8 scale when its short side stays at ``min_side``
    or more (``reduction``); other formats, and JPEGs too small to reduce, are decoded whole.
    """
    return read_reduced(path, min_side)[0]


def read_reduced(path: str | os.PathLike[str], min_side: int) -> tuple[np.ndarray, tuple[int, int]]:
    """``read_image(path, min_side)`` and the full image's (height, width), which a reduced decode rounds."""
    data = np.fromfile(str(path), dtype=np.uint8)  # fromfile + imdecode handles non-ASCII paths
    if min_side and data[:2].tobytes() == b"\xff\xd8":
        head = read_header(data[: 1 << 16]) or read_header(data)
        if head is not None:
            k = reduction(head.width, head.height, min_side)
            if k > 1:
                return decode_image(data, k), (head.height, head.width)
    img = decode_image(data)
    return img, (img.shape[0], img.shape[1])


def decode_image(data: np.ndarray | bytes, reduce: int = 1) -> np.ndarray:
    """Decode the bytes of an image file exactly as ``read_image`` does (so checks and training agree); a JPEG at
    1/``reduce`` scale (2, 4 or 8; see ``reduction``)."""
    data = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    if data.size == 0:
        raise UnreadableImage("empty file (0 bytes)")
    special = decoder_for(data[:HEAD_BYTES].tobytes())  # DICOM, 16-bit PNG/TIFF: see decoders.py
    if special is not None:
        img = special.decode(data)
        if img is not None:
            return img
    flag = _REDUCED[reduce] if reduce > 1 and data[:2].tobytes() == b"\xff\xd8" else cv2.IMREAD_COLOR
    img = cv2.imdecode(data, flag)
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
