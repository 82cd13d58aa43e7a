"""One parallel pass over every image: is it usable, how big, which colour mode, and its content and perceptual hashes.

Each file is read once; the same bytes are hashed (SHA-1, for exact duplicates), decoded exactly as training decodes
them (``decode_image``; a JPEG at 1/2..1/8 scale when its short side allows), and pHashed (``phash``, for near
duplicates). On a first run the same decode fills the decoded-image cache (a ``PixelSink``), so each image is decoded
once before training. Results are cached per file under ``cache_dir('checks')``, keyed by path, size and
modification time, so checking an unchanged folder again costs one ``stat`` per file.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import pandas as pd
import scipy.fft
from PIL import Image

from podium.core.cachedir import cache_dir
from podium.core.io import file_stamp, write_json
from podium.core.progress import track
from podium.data.pixels.decoders import HEAD_BYTES, decoder_for
from podium.data.pixels.images import UnreadableImage, decode_image, read_header, reduction, truncation

CACHE_VERSION = 4  # 3: pHash with a reducing gap, on reduced JPEG decodes; 4: 16-bit images scaled by range
COLUMNS = ("path", "error", "width", "height", "mode", "bytes", "sha1", "phash")


# pHashes are taken on a decode whose short side is at least this (JPEGs decode at 1/2..1/8 scale down to it): a
# pHash reads a 32x32 downscale, so it does not change beyond a bit or two, and a 4000x2672 JPEG decodes ~2-3x faster.
PHASH_SIDE = 256


class PixelSink(Protocol):
    """Where a check pass hands the pixels it decoded (the decoded-image cache's ``StoreFiller``), so that a first
    run decodes each image once."""

    min_side: int  # the decode must keep the short side at least this (0: full size)

    def wants(self, path: str) -> bool:
        """Whether ``path`` still needs pixels."""

    def put(self, path: str, img: np.ndarray, full: tuple[int, int] | None = None) -> None:
        """Take the decoded RGB image of ``path`` (a reduced decode of a ``full`` (height, width) image); threadsafe."""


def phash(img: np.ndarray) -> str:
    """The 64-bit perceptual hash of an RGB image as 16 hex digits: imagehash's pHash (gray, 32x32 Lanczos, 2-D DCT,
    the 8x8 lowest frequencies above their median), with Pillow's ``reducing_gap`` (a box reduction before the
    Lanczos pass), which makes it 3x faster on a 512 px decode; equal to imagehash's on 29 of 30 bench images (the
    other 2 bits apart) and on the re-shot leaves of plant-pathology-2021-mini."""
    gray = Image.fromarray(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img)
    small = np.asarray(gray.resize((32, 32), Image.Resampling.LANCZOS, reducing_gap=2.0), dtype=np.float64)
    low = scipy.fft.dct(scipy.fft.dct(small, axis=0), axis=1)[:8, :8]
    return f"{int(np.packbits(low.flatten() > np.median(low)).view('>u8')[0]):016x}"


def check_file(path: str, sink: PixelSink | None = None) -> dict[str, Any]:
    """Everything podium needs to know about one image file; ``error`` says why it is unusable (None if usable).

    The file is read and decoded once: a JPEG at reduced scale (never below ``PHASH_SIDE``, nor below
    ``sink.min_side``); with a ``sink`` that wants this file, the decoded pixels go to it as well.
    """
    rec: dict[str, Any] = {"path": path, "error": None, "width": 0, "height": 0, "mode": "", "bytes": 0,
                           "sha1": "", "phash": ""}
    data, unreadable = _read_bytes(path)
    if unreadable:
        return {**rec, "error": unreadable}
    rec.update(bytes=len(data), sha1=hashlib.sha1(data).hexdigest())
    cut = truncation(data[:2], data[-1024:])  # before decoding: libjpeg would print warnings for a cut-off file
    if cut:
        return {**rec, "error": cut}
    head = read_header(data[: 1 << 16]) or read_header(data)  # the EXIF block sits in the first 64 KB
    wanted = sink is not None and sink.wants(path)
    min_side = _decode_side(sink) if wanted else PHASH_SIDE
    k = reduction(head.width, head.height, min_side) if head is not None and head.jpeg and min_side else 1
    try:
        img = decode_image(data, k)
    except UnreadableImage as e:
        return {**rec, "error": str(e)}
    if head is None or k == 1:  # the decoded size is the true size
        special = decoder_for(data[:HEAD_BYTES])
        mode = head.mode if head else special.mode if special else "?"
        rec.update(height=int(img.shape[0]), width=int(img.shape[1]), mode=mode)
    else:
        rec.update(height=head.height, width=head.width, mode=head.mode)
    if rec["height"] < 2 or rec["width"] < 2:
        return {**rec, "error": f"image is only {rec['width']}x{rec['height']} pixels"}
    rec["phash"] = phash(img)  # on the decoded RGB, as the model sees it
    if wanted:
        sink.put(path, img, (rec["height"], rec["width"]))
    return rec


def _read_bytes(path: str) -> tuple[bytes, str]:
    """The file's bytes, or why it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(), ""
    except FileNotFoundError:
        return b"", "file not found"
    except OSError as e:
        return b"", f"cannot be read ({e.strerror})"


def _decode_side(sink: PixelSink) -> int:
    """The short side a decode must keep for a sink that wants the file: the cache's side, never below pHash's
    (0: it needs the full image, e.g. before image ops)."""
    return max(PHASH_SIDE, sink.min_side) if sink.min_side else 0


def _cache_file(paths: list[str]) -> Path:
    """One cache file per image folder set, named by a hash of their common parent."""
    parent = os.path.commonpath(paths) if paths else ""
    return cache_dir("checks") / f"{hashlib.sha1(parent.encode()).hexdigest()[:16]}.json"


def _load_cache(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw.get("files", {}) if raw.get("version") == CACHE_VERSION else {}


def check_files(paths: list[str], workers: int | None = None, use_cache: bool = True,
                sink: PixelSink | None = None) -> pd.DataFrame:
    """Check every file in ``paths`` (parallel, cached by size and mtime); one row per path, in order (COLUMNS).

    With a ``sink`` (the decoded-image cache of the coming run), the files it still wants are decoded in the same
    pass and their pixels handed to it, checked or not: one decode per image on a first run."""
    paths = [str(p) for p in paths]
    cache_path = _cache_file(paths)
    cached = _load_cache(cache_path) if use_cache else {}
    stats = [file_stamp(p) for p in paths]
    records: list[dict[str, Any] | None] = []
    todo = []
    for i, (p, st) in enumerate(zip(paths, stats)):
        hit = cached.get(p)
        if st is not None and hit is not None and hit["key"] == list(st) and not (sink and sink.wants(p)):
            records.append(hit["rec"])
        else:
            records.append(None)
            todo.append(i)
    if todo:
        workers = workers or min(8, (os.cpu_count() or 1) + 1)
        with ThreadPoolExecutor(workers) as pool:  # file reads, cv2 decoding and Pillow's resize release the GIL
            checked = pool.map(check_file if sink is None else partial(check_file, sink=sink), [paths[i] for i in todo])
            for i, rec in zip(todo, track(checked, len(todo), "check images")):
                records[i] = rec
        if use_cache:
            fresh = {p: {"key": list(st), "rec": rec} for p, st, rec in zip(paths, stats, records) if st is not None}
            write_json(cache_path, {"version": CACHE_VERSION, "files": fresh})  # only current files: no stale growth
    df = pd.DataFrame(records, columns=list(COLUMNS))
    df["error"] = df["error"].astype(object).where(df["error"].notna(), None)
    return df


def phash_ints(hexes: list[str] | pd.Series) -> np.ndarray:
    """64-bit pHash hex strings as unsigned integers."""
    return np.array([int(h, 16) for h in hexes], dtype=np.uint64)
