"""One parallel pass over every image: is it usable, how big, which colour mode, and its content and perceptual hashes.

Each file is read once; the same bytes are hashed (SHA-1, for exact duplicates), decoded exactly as training decodes
them (``decode_image``), and pHashed (``imagehash``, for near duplicates). Results are cached per file under
``cache_dir('checks')``, keyed by path, size and modification time, so checking an unchanged folder again costs one
``stat`` per file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
import pandas as pd
from PIL import Image

from podium.core.cachedir import cache_dir
from podium.core.io import write_json
from podium.core.progress import track
from podium.data.images import UnreadableImage, decode_image, truncation

CACHE_VERSION = 2
COLUMNS = ("path", "error", "width", "height", "mode", "bytes", "sha1", "phash")


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _mode(data: bytes) -> str:
    """The file's own colour mode as Pillow names it (L, P, RGBA, CMYK, I;16...), read from the header only."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            mode = im.mode
    except Exception:  # noqa: BLE001 - the decode step reports unreadable files; the mode is informative only
        return "?"
    # Pillow opens 16-bit colour PNGs as 8-bit RGB; the bit depth byte of the PNG header tells the truth
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 24 and data[24] == 16 and "16" not in mode:
        mode += ";16"
    return mode


def check_file(path: str) -> dict[str, Any]:
    """Everything podium needs to know about one image file; ``error`` says why it is unusable (None if usable)."""
    rec: dict[str, Any] = {"path": path, "error": None, "width": 0, "height": 0, "mode": "", "bytes": 0,
                           "sha1": "", "phash": ""}
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {**rec, "error": "file not found"}
    except OSError as e:
        return {**rec, "error": f"cannot be read ({e.strerror})"}
    rec.update(bytes=len(data), sha1=hashlib.sha1(data).hexdigest())
    cut = truncation(data[:2], data[-1024:])  # before decoding: libjpeg would print warnings for a cut-off file
    if cut:
        return {**rec, "error": cut}
    try:
        img = decode_image(data)
    except UnreadableImage as e:
        return {**rec, "error": str(e)}
    rec.update(height=int(img.shape[0]), width=int(img.shape[1]), mode=_mode(data))
    if img.shape[0] < 2 or img.shape[1] < 2:
        return {**rec, "error": f"image is only {img.shape[1]}x{img.shape[0]} pixels"}
    rec["phash"] = str(imagehash.phash(Image.fromarray(img)))  # on the decoded RGB, as the model sees it
    return rec


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


def check_files(paths: list[str], workers: int | None = None, use_cache: bool = True) -> pd.DataFrame:
    """Check every file in ``paths`` (parallel, cached by size and mtime); one row per path, in order (COLUMNS)."""
    paths = [str(p) for p in paths]
    cache_path = _cache_file(paths)
    cached = _load_cache(cache_path) if use_cache else {}
    stats = [_stat(p) for p in paths]
    records: list[dict[str, Any] | None] = []
    todo = []
    for i, (p, st) in enumerate(zip(paths, stats)):
        hit = cached.get(p)
        if st is not None and hit is not None and hit["key"] == list(st):
            records.append(hit["rec"])
        else:
            records.append(None)
            todo.append(i)
    if todo:
        workers = workers or min(8, (os.cpu_count() or 1) + 1)
        with ThreadPoolExecutor(workers) as pool:  # file reads, cv2 decoding and Pillow's resize release the GIL
            checked = pool.map(check_file, [paths[i] for i in todo])
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
