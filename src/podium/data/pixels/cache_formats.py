"""How the decoded-image cache stores pixels (``data.cache_format``): raw uint8 or an image codec at the cache size.

Each format is a registered ``CacheFormat`` that encodes a cached RGB image to bytes and decodes it back. ``raw`` is
the pixels themselves (no decode cost, side^2 x 3 bytes a square image); ``jpeg`` is a quality-95 JPEG of the shrunk
image (about a ninth of the disk, for a decode of ~1.4 ms per 280 px image on one loaded core). ``auto``
(``resolve_format``) keeps raw while a store's raw size stays under ``AUTO_RAW_LIMIT`` and switches to JPEG above
it: ``bench/large_data.py`` measures both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from podium.core.registry import Registry

# Bytes of raw pixels a store may reach before ``auto`` picks JPEG. bench/large_data.py (2 shared cores): the loader
# reads ~960 img/s per core from a raw 280 px cache and ~390 from a JPEG one (a 1.4 ms decode), so raw stays the
# default while its disk use is modest (20k images at 224 px: 7 GB raw, 0.76 GB JPEG); at 384 px (21 GB raw) the
# disk, and a page cache that no longer holds the store, weigh more.
AUTO_RAW_LIMIT = 16 * 1024**3
_ASPECT = 4 / 3  # the long side assumed by ``resolve_format``'s estimate (most photographs are 4:3 or 3:2)


@dataclass(frozen=True)
class CacheFormat:
    """Encode an HxWx3 uint8 RGB image to bytes; decode bytes (with the image's height and width) back."""

    encode: Callable[[np.ndarray], bytes]
    decode: Callable[[memoryview | bytes, int, int], np.ndarray]
    lossless: bool


CACHE_FORMATS: Registry[CacheFormat] = Registry("cache format")


def _raw_decode(buf: memoryview | bytes, h: int, w: int) -> np.ndarray:
    # A copy: the map is read-only and some augmentations write into their input.
    return np.frombuffer(buf, dtype=np.uint8, count=h * w * 3).reshape(h, w, 3).copy()


def _codec(ext: str, params: list[int]) -> tuple[Callable[[np.ndarray], bytes], Callable[..., np.ndarray]]:
    def encode(img: np.ndarray) -> bytes:
        ok, buf = cv2.imencode(ext, cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
        if not ok:
            raise ValueError(f"cv2 could not encode a {img.shape} image as {ext}")
        return buf.tobytes()

    def decode(buf: memoryview | bytes, h: int, w: int) -> np.ndarray:
        img = cv2.imdecode(np.frombuffer(buf, dtype=np.uint8), cv2.IMREAD_COLOR)
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    return encode, decode


CACHE_FORMATS.register("raw")(CacheFormat(lambda img: np.ascontiguousarray(img).tobytes(), _raw_decode, True))
CACHE_FORMATS.register("jpeg")(CacheFormat(*_codec(".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95]), lossless=False))


def resolve_format(name: str, images: int, side: int) -> str:
    """The format of a store of ``images`` images at cache side ``side``: ``name`` itself, or for ``auto`` raw while
    the estimated raw size (4:3 images) stays under ``AUTO_RAW_LIMIT``, JPEG above."""
    if name != "auto":
        CACHE_FORMATS.get(name)
        return name
    raw = images * side * round(side * _ASPECT) * 3
    return "raw" if raw <= AUTO_RAW_LIMIT else "jpeg"
