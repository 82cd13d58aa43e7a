"""The decoded-image cache: every image is decoded once (EXIF-rotated, RGB), shrunk to a cache resolution and kept as
raw uint8 pixels in a memory-mapped file, so epochs, folds, runs and inference skip JPEG/PNG decoding.

Images pass through the model's image ops (``data.preprocess``, podium.data.pixels.image_ops) before they are shrunk, so
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
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from filelock import FileLock

from podium.config import DataConfig
from podium.core.cachedir import cache_dir
from podium.core.errors import PodiumError
from podium.core.io import file_stamp, write_json
from podium.core.progress import track
from podium.data.pixels.cache_formats import CACHE_FORMATS, resolve_format
from podium.data.pixels.image_ops import ImageOps, ops_of
from podium.data.pixels.images import UnreadableImage, read_reduced
from podium.data.pixels.preprocessing import Preprocessing

VERSION = 3  # 2: entries carry their byte length; stores are named by format; 3: 16-bit PNG/TIFF scaled by range
# INTER_AREA averages the source pixels it shrinks, so a cached image is an anti-aliased copy of the original.
RESIZE_METHOD = "area"
_BUILD_CHUNK = 256  # images decoded per batch of threads: bounds the memory held before it is written


def cache_side(size: int, scale: float) -> int:
    """The cache resolution (short side, pixels) for a model input of ``size``: ``scale`` x size, at least size."""
    return max(size, int(round(scale * size)))


def shrink(img: np.ndarray, side: int, full: tuple[int, int] | None = None) -> np.ndarray:
    """Resize so that the short side is ``side`` (aspect ratio kept); images already that small are kept as they are.

    ``full``: the (height, width) of the full image when ``img`` is a reduced JPEG decode, so the result has the
    shape a full decode would give (a reduced decode rounds its sides up). After a reduced decode the decoder's
    scaled inverse DCT has done the averaging and less than a 2x step is left (``images.reduction`` takes the largest
    factor that keeps the side), so that step is bilinear: as close to a full decode + area shrink as an area step
    (2.1 grey levels mean on the bench images) at a quarter of its cost."""
    h, w = full or img.shape[:2]
    short = min(h, w)
    if short <= side:
        return img
    nh, nw = max(1, round(h * side / short)), max(1, round(w * side / short))
    if (nh, nw) == img.shape[:2]:
        return img
    reduced = full is not None and tuple(full) != img.shape[:2]
    return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR if reduced else cv2.INTER_AREA)


NO_OPS = ImageOps()


def store_dir(folder: str, side: int, root: str = "", ops: ImageOps = NO_OPS, fmt: str = "raw") -> Path:
    """The store of the images in ``folder`` at cache side ``side`` after the image ops ``ops``, in format ``fmt``."""
    key = hashlib.sha1(str(Path(folder).resolve()).encode()).hexdigest()[:16]
    suffix = f"-{ops.key()}" if ops.names else ""
    return cache_dir("images", root) / f"v{VERSION}-{key}-{side}-{RESIZE_METHOD}-{fmt}{suffix}"


class StoreFiller:
    """The stores of one set of image paths, open and locked for appending (a context manager).

    ``wants(path)`` says whether a path lacks a valid entry; ``put(path, img)`` takes its decoded RGB image (full
    size, or a reduced JPEG decode whose short side is at least ``min_side``), applies the image ops, shrinks it to
    the cache side, encodes it in the store's format and appends it (thread-safe). Used by ``build_cache`` and, as
    the check pass's pixel sink (``checks.PixelSink``), by a first run's one decode per image. On exit the pixels
    are synced before the index that points at them is written, and ``entries`` holds every valid entry.
    """

    def __init__(self, paths: Sequence[str], side: int, root: str = "", ops: ImageOps = NO_OPS, fmt: str = "auto"
                 ) -> None:
        self.side, self.ops = side, ops
        # a JPEG may be decoded at reduced scale down to the cache side; image ops see the full image
        self.min_side = 0 if ops.names else side
        self._folders: dict[str, list[str]] = {}
        for p in dict.fromkeys(os.path.abspath(str(p)) for p in paths):
            self._folders.setdefault(os.path.dirname(p), []).append(os.path.basename(p))
        self._fmt, self._root = fmt, root
        self._lock = threading.Lock()
        self._stack = ExitStack()
        self._open: dict[str, dict] = {}  # folder -> store, format, index, stats, out file, offset
        self.written = 0

    def __enter__(self) -> StoreFiller:
        try:
            for folder, names in self._folders.items():
                fmt = resolve_format(self._fmt, len(names), self.side)
                store = store_dir(folder, self.side, self._root, self.ops, fmt)
                store.mkdir(parents=True, exist_ok=True)
                self._stack.enter_context(FileLock(store / "lock"))  # other processes of a run, or other runs
                pixels, index_path = store / "pixels.u8", store / "index.json"
                index = json.loads(index_path.read_text()) if index_path.is_file() else {}
                size = pixels.stat().st_size if pixels.is_file() else 0
                stats = {n: file_stamp(os.path.join(folder, n)) for n in names}
                missing = {n for n in names if stats[n] is not None and not _valid(index.get(n), stats[n], size)}
                self._open[folder] = {"store": store, "fmt": fmt, "index": index, "stats": stats,
                                      "missing": missing, "out": None}
        except BaseException:
            self._stack.close()
            raise
        return self

    def wants(self, path: str) -> bool:
        """Whether ``path`` has no valid entry yet (a missing file is never wanted: the checks report it)."""
        folder, name = os.path.split(os.path.abspath(path))
        st = self._open.get(folder)
        return st is not None and name in st["missing"]

    def missing(self) -> list[str]:
        """The paths that still need pixels, folder by folder."""
        return [os.path.join(f, n) for f, st in self._open.items() for n in self._folders[f] if n in st["missing"]]

    def put(self, path: str, img: np.ndarray, full: tuple[int, int] | None = None) -> None:
        """Append the cached form of ``path``'s decoded image ``img`` (a reduced decode of a ``full`` (height,
        width) image, if given)."""
        folder, name = os.path.split(os.path.abspath(path))
        small = self.ops.apply(img)
        small = np.ascontiguousarray(shrink(small, self.side, None if self.ops.names else full))
        st = self._open[folder]
        data = CACHE_FORMATS.get(st["fmt"]).encode(small)
        with self._lock:
            if name not in st["missing"]:
                return
            if st["out"] is None:
                st["out"] = self._stack.enter_context(open(st["store"] / "pixels.u8", "ab"))
                st["offset"] = st["out"].seek(0, os.SEEK_END)
            st["out"].write(data)
            st["index"][name] = [*st["stats"][name], st["offset"], small.shape[0], small.shape[1], len(data)]
            st["offset"] += len(data)
            st["missing"].discard(name)
            self.written += 1

    def __exit__(self, *exc: object) -> None:
        try:
            for st in self._open.values():
                if st["out"] is not None:
                    st["out"].flush()
                    os.fsync(st["out"].fileno())  # the pixels are on disk before the index that points at them
                    write_json(st["store"] / "index.json", st["index"])
        finally:
            self._stack.close()

    def entries(self, folder: str) -> tuple[Path, str, dict[str, list[int]]]:
        """The pixel file, format and index of ``folder``'s store."""
        st = self._open[folder]
        return st["store"] / "pixels.u8", st["fmt"], st["index"]


def _valid(entry: list[int] | None, stat: tuple[int, int], size: int) -> bool:
    return entry is not None and len(entry) == 6 and (entry[0], entry[1]) == stat and entry[2] + entry[5] <= size


@dataclass
class DecodedImages:
    """Read access to the cached pixels of a list of images; picklable, and each DataLoader worker maps the files
    itself on first use (so it works with fork and spawn start methods)."""

    files: list[str]
    formats: list[str]  # per file: its ``data.cache_format``
    store: np.ndarray  # per image: which file
    offset: np.ndarray
    shape: np.ndarray  # per image: height, width
    length: np.ndarray  # per image: bytes in the file

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
        return DecodedImages(self.files, self.formats, self.store[idx], self.offset[idx], self.shape[idx],
                             self.length[idx])

    def __getitem__(self, i: int) -> np.ndarray:
        s = int(self.store[i])
        mm = self._maps.get(s)
        if mm is None:
            mm = self._maps[s] = np.memmap(self.files[s], dtype=np.uint8, mode="r")
        h, w = (int(v) for v in self.shape[i])
        start = int(self.offset[i])
        return CACHE_FORMATS.get(self.formats[s]).decode(mm[start : start + int(self.length[i])].data, h, w)

    def describe(self) -> str:
        """One line: how many images, in which format, and their disk use."""
        fmts = ", ".join(sorted(set(self.formats)))
        return f"{len(self)} images in the cache ({fmts}), {self.disk_bytes() / 1e6:.1f} MB on disk"

    def disk_bytes(self) -> int:
        """Bytes these images take in their stores (each distinct image once)."""
        return int(np.unique(np.stack([self.store, self.offset, self.length], 1), axis=0)[:, 2].sum())


def _decode_into(filler: StoreFiller, path: str) -> None:
    try:
        img, full = read_reduced(path, filler.min_side)  # a JPEG at reduced scale when the cache side allows
    except (UnreadableImage, FileNotFoundError) as e:
        raise PodiumError(f"Image {path} cannot be read ({e}); fix or remove it, or set data.check_images=true to "
                          "list every unreadable image before training.") from None
    filler.put(path, img, full)


def build_cache(paths: Sequence[str], side: int, root: str = "", threads: int = 0, ops: ImageOps = NO_OPS,
                fmt: str = "raw") -> DecodedImages:
    """Decode the images at ``paths`` that are not cached yet (in parallel threads), after the image ops ``ops``,
    and return their cached pixels (``fmt``: a ``data.cache_format``)."""
    threads = threads or min(8, (os.cpu_count() or 1) + 1)
    absolute = [os.path.abspath(str(p)) for p in paths]
    for p in dict.fromkeys(absolute):
        if file_stamp(p) is None:
            raise PodiumError(f"Image {p} does not exist; check the data folder.")
    n = len(paths)
    store, offset = np.zeros(n, np.int32), np.zeros(n, np.int64)
    shape, length = np.zeros((n, 2), np.int32), np.zeros(n, np.int64)
    files: list[str] = []
    formats: list[str] = []
    with StoreFiller(absolute, side, root, ops, fmt) as filler:
        missing = filler.missing()
        if missing:
            with ThreadPoolExecutor(threads) as pool:  # cv2 releases the GIL
                chunks = [missing[start : start + _BUILD_CHUNK] for start in range(0, len(missing), _BUILD_CHUNK)]
                for chunk in track(chunks, len(missing), f"cache {side} px", advance=len):
                    list(pool.map(lambda p: _decode_into(filler, p), chunk))
    by_folder: dict[str, list[int]] = {}
    for i, p in enumerate(absolute):
        by_folder.setdefault(os.path.dirname(p), []).append(i)
    for folder, rows in by_folder.items():
        pixels, f, index = filler.entries(folder)
        store[rows] = len(files)
        files.append(str(pixels))
        formats.append(f)
        e = np.asarray([index[os.path.basename(absolute[i])] for i in rows], dtype=np.int64).reshape(-1, 6)
        offset[rows], shape[rows], length[rows] = e[:, 2], e[:, 3:5], e[:, 5]
    return DecodedImages(files, formats, store, offset, shape, length)


def fresh_decode_seconds(paths: Sequence[str], side: int, ops: ImageOps = NO_OPS, fmt: str = "raw",
                         threads: int = 0) -> float:
    """Seconds per image that ``build_cache`` spends on images it has not cached yet (decode, image ops, shrink,
    encode, append; on as many threads), timed on ``paths`` (a sample) decoded into a temporary store that is then
    deleted: what a fresh image set (a hidden test set) costs before the first model sees it."""
    import tempfile

    threads = threads or min(8, (os.cpu_count() or 1) + 1)
    absolute = list(dict.fromkeys(os.path.abspath(str(p)) for p in paths))
    if not absolute:
        return 0.0

    def decode(path: str) -> None:  # the work of _decode_into, without counting as the run's own decode
        filler.put(path, *read_reduced(path, filler.min_side))

    with tempfile.TemporaryDirectory(prefix="podium-decode-") as root:
        with StoreFiller(absolute, side, root, ops, fmt) as filler, ThreadPoolExecutor(threads) as pool:
            t0 = time.perf_counter()  # the per-image work only: opening and syncing a store is paid once per set
            list(pool.map(decode, absolute))
            return (time.perf_counter() - t0) / len(absolute)


def decoded_images(paths: Sequence[str], size: int | tuple[int, int], cfg: DataConfig, ops: ImageOps = NO_OPS
                   ) -> DecodedImages | None:
    """The cached pixels of ``paths`` after the image ops ``ops`` (the model's, ``ops_of(prep)``) for a model input
    of ``size`` px (or (height, width): the cache side follows the longer one, so no side is upscaled from a smaller
    copy), or None when ``data.cache`` is off."""
    if not cfg.cache:
        return None
    return build_cache(paths, cache_side_of(size, cfg), cfg.cache_dir, ops=ops, fmt=cfg.cache_format)


def cache_side_of(size: int | tuple[int, ...], cfg: DataConfig) -> int:
    """The cache side for a model input of ``size`` px (or height, width) under ``data.cache_scale``."""
    side = max(size) if isinstance(size, tuple) else size
    return cache_side(side, cfg.cache_scale)


def first_pass_cache(paths: Sequence[str], prep: Preprocessing, cfg: DataConfig) -> StoreFiller | None:
    """The stores that ``decoded_images`` will read for ``paths`` and a model of preprocessing ``prep`` (resolved
    before the model exists), for the check pass to fill as it decodes: one decode per image on a first run; None
    when ``data.cache`` is off."""
    if not cfg.cache:
        return None
    return StoreFiller(paths, cache_side_of(prep.hw, cfg), cfg.cache_dir, ops_of(prep), cfg.cache_format)
