"""The decoded-image cache: every image is decoded once (EXIF-rotated, RGB), shrunk to a cache resolution and kept as
raw uint8 pixels in a memory-mapped file, so epochs, folds, runs and inference skip JPEG/PNG decoding.

Images pass through the model's image ops (``data.preprocess``, podium.data.image_ops) before they are shrunk, so
each op list (with its parameters) has its own store. One store per (image folder, cache side, resize method, image
ops) lives under ``cache_dir('images')``: ``pixels.u8`` (append-only raw bytes) and ``index.json`` (file name ->
[bytes, mtime_ns, offset, height, width]). An entry is valid only while its source file has the same size and
modification time; a changed file is decoded again and appended, so a stale image is never served. Images keep their
aspect ratio: the short side is brought down to the cache side (never up), so the training crops and the evaluation
resize see the same geometry as with the original files, at lower cost.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from filelock import FileLock

from podium.config import DataConfig
from podium.core.cachedir import cache_dir
from podium.core.errors import PodiumError
from podium.core.io import write_json
from podium.core.progress import track
from podium.data.image_ops import ImageOps
from podium.data.images import UnreadableImage

VERSION = 1
# INTER_AREA averages the source pixels it shrinks, so a cached image is an anti-aliased copy of the original.
RESIZE_METHOD = "area"
_BUILD_CHUNK = 256  # images decoded per batch of threads: bounds the memory held before it is written


def cache_side(size: int, scale: float) -> int:
    """The cache resolution (short side, pixels) for a model input of ``size``: ``scale`` x size, at least size."""
    return max(size, int(round(scale * size)))


def shrink(img: np.ndarray, side: int) -> np.ndarray:
    """Resize so that the short side is ``side`` (aspect ratio kept); images already that small are kept as they are."""
    h, w = img.shape[:2]
    short = min(h, w)
    if short <= side:
        return img
    nh, nw = max(1, round(h * side / short)), max(1, round(w * side / short))
    return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)


NO_OPS = ImageOps()


def _decode(path: str, side: int, ops: ImageOps = NO_OPS) -> np.ndarray:
    try:
        return np.ascontiguousarray(shrink(ops.read(path), side))
    except (UnreadableImage, FileNotFoundError) as e:
        raise PodiumError(f"Image {path} cannot be read ({e}); fix or remove it, or set data.check_images=true to "
                          "list every unreadable image before training.") from None


def _stat_key(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise PodiumError(f"Image {path} does not exist; check the data folder.") from None
    return st.st_size, st.st_mtime_ns


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (several processes of one run, or two runs, may fill the same store), through
    filelock (installed with torch), which locks on Windows as well as on POSIX systems."""
    with FileLock(path):
        yield


def store_dir(folder: str, side: int, root: str = "", ops: ImageOps = NO_OPS) -> Path:
    """The store of the images in ``folder`` at cache side ``side`` after the image ops ``ops``."""
    key = hashlib.sha1(str(Path(folder).resolve()).encode()).hexdigest()[:16]
    suffix = f"-{ops.key()}" if ops.names else ""
    return cache_dir("images", root) / f"v{VERSION}-{key}-{side}-{RESIZE_METHOD}{suffix}"


def _fill_store(folder: str, names: list[str], side: int, root: str, threads: int, ops: ImageOps = NO_OPS
                ) -> tuple[Path, list[list[int]]]:
    """Make sure every file of ``names`` in ``folder`` has a valid entry; return the store and their entries."""
    store = store_dir(folder, side, root, ops)
    store.mkdir(parents=True, exist_ok=True)
    pixels, index_path = store / "pixels.u8", store / "index.json"
    with _locked(store / "lock"):
        index: dict[str, list[int]] = json.loads(index_path.read_text()) if index_path.is_file() else {}
        size = pixels.stat().st_size if pixels.is_file() else 0
        stats = {n: _stat_key(os.path.join(folder, n)) for n in names}

        def valid(n: str) -> bool:
            e = index.get(n)
            return e is not None and (e[0], e[1]) == stats[n] and e[2] + e[3] * e[4] * 3 <= size

        missing = [n for n in dict.fromkeys(names) if not valid(n)]
        if missing:
            with open(pixels, "ab") as out, ThreadPoolExecutor(threads) as pool:  # cv2 releases the GIL
                offset = out.seek(0, os.SEEK_END)
                chunks = [missing[start : start + _BUILD_CHUNK] for start in range(0, len(missing), _BUILD_CHUNK)]
                for chunk in track(chunks, len(missing), f"cache {side} px", advance=len):
                    for n, img in zip(chunk, pool.map(lambda n: _decode(os.path.join(folder, n), side, ops), chunk)):
                        out.write(img.tobytes())
                        index[n] = [*stats[n], offset, img.shape[0], img.shape[1]]
                        offset += img.nbytes
                out.flush()
                os.fsync(out.fileno())  # the pixels are on disk before the index that points at them
            write_json(index_path, index)
    return pixels, [index[n] for n in names]


@dataclass
class DecodedImages:
    """Read access to the cached pixels of a list of images; picklable, and each DataLoader worker maps the files
    itself on first use (so it works with fork and spawn start methods)."""

    files: list[str]
    store: np.ndarray  # per image: which file
    offset: np.ndarray
    shape: np.ndarray  # per image: height, width

    def __post_init__(self) -> None:
        self._maps: dict[int, np.memmap] = {}

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_maps"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._maps = {}

    def __len__(self) -> int:
        return len(self.offset)

    def take(self, idx: np.ndarray) -> DecodedImages:
        """The images at rows ``idx`` (a fold's training or validation part), sharing the same files."""
        return DecodedImages(self.files, self.store[idx], self.offset[idx], self.shape[idx])

    def __getitem__(self, i: int) -> np.ndarray:
        s = int(self.store[i])
        mm = self._maps.get(s)
        if mm is None:
            mm = self._maps[s] = np.memmap(self.files[s], dtype=np.uint8, mode="r")
        h, w = (int(v) for v in self.shape[i])
        start = int(self.offset[i])
        # A copy: the map is read-only and some augmentations write into their input.
        return np.array(mm[start : start + h * w * 3]).reshape(h, w, 3)


def build_cache(paths: Sequence[str], side: int, root: str = "", threads: int = 0, ops: ImageOps = NO_OPS
                ) -> DecodedImages:
    """Decode the images at ``paths`` that are not cached yet (in parallel threads), after the image ops ``ops``,
    and return their cached pixels."""
    threads = threads or min(8, (os.cpu_count() or 1) + 1)
    by_folder: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        by_folder.setdefault(os.path.dirname(os.path.abspath(p)), []).append(i)
    n = len(paths)
    store, offset, shape = np.zeros(n, np.int32), np.zeros(n, np.int64), np.zeros((n, 2), np.int32)
    files: list[str] = []
    for folder, rows in by_folder.items():
        names = [os.path.basename(paths[i]) for i in rows]
        pixels, entries = _fill_store(folder, names, side, root, threads, ops)
        store[rows] = len(files)
        files.append(str(pixels))
        e = np.asarray(entries, dtype=np.int64).reshape(-1, 5)
        offset[rows], shape[rows] = e[:, 2], e[:, 3:5]
    return DecodedImages(files, store, offset, shape)


def decoded_images(paths: Sequence[str], size: int | tuple[int, int], cfg: DataConfig, ops: ImageOps = NO_OPS
                   ) -> DecodedImages | None:
    """The cached pixels of ``paths`` after the image ops ``ops`` (the model's, ``ops_of(prep)``) for a model input
    of ``size`` px (or (height, width): the cache side follows the longer one, so no side is upscaled from a smaller
    copy), or None when ``data.cache`` is off."""
    if not cfg.cache:
        return None
    side = max(size) if isinstance(size, tuple) else size
    return build_cache(paths, cache_side(side, cfg.cache_scale), cfg.cache_dir, ops=ops)
