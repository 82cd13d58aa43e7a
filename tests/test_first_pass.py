"""One decode per image on a first run: reduced JPEG decodes, the check pass filling the cache, cache formats.

Tolerance of a reduced decode: the cached image of a JPEG decoded at 1/2..1/8 scale and shrunk with INTER_AREA is
within 3 grey levels (mean absolute difference) and 16 levels (99th percentile) of a full decode shrunk the same way,
on images with pixel-level grain (the hardest case); on the 2048x1365 bench images it is about 2 levels, less than
the difference between INTER_AREA and bilinear shrinking of the same full decode (2.2-3.0).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import imagehash
import numpy as np
import pytest
from PIL import Image

from podium.core.errors import PodiumError
from podium.data.pixels import checks, images
from podium.data.pixels.cache import StoreFiller, build_cache, shrink
from podium.data.pixels.cache_formats import AUTO_RAW_LIMIT, resolve_format
from podium.data.pixels.checks import check_file, check_files, phash_ints
from podium.data.pixels.duplicates import find_clusters
from podium.data.pixels.images import read_header, read_image, read_reduced, reduction

MEAN_TOL, P99_TOL = 3.0, 16.0


def photo(seed: int, h: int = 1200, w: int = 1600) -> np.ndarray:
    """A smooth scene with pixel-level grain, like a photograph's fine detail."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 255, (6, 8, 3)).astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0, 6, (h, w, 1))
    return np.clip(base + grain, 0, 255).astype(np.uint8)


def write_jpeg(path: Path, img: np.ndarray, exif_orientation: int = 0) -> str:
    im = Image.fromarray(img)
    kwargs = {}
    if exif_orientation:
        exif = im.getexif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif
    im.save(path, "JPEG", quality=90, **kwargs)
    return str(path)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("PODIUM_CACHE", str(tmp_path / "cache"))
    d = tmp_path / "imgs"
    d.mkdir()
    paths = [write_jpeg(d / f"im{i}.jpg", photo(i)) for i in range(3)]
    (d / "copy.jpg").write_bytes(Path(paths[0]).read_bytes())  # an exact duplicate of im0
    near = np.clip(photo(1).astype(np.int16) + 5, 0, 255).astype(np.uint8)
    paths += [str(d / "copy.jpg"), write_jpeg(d / "near.jpg", near)]  # a near duplicate of im1
    paths.append(write_jpeg(d / "rot.jpg", photo(7, 1200, 1800), exif_orientation=6))  # displayed 1800 tall
    cv2.imwrite(str(d / "small.png"), photo(9, 300, 400))  # not a JPEG: decoded whole
    paths.append(str(d / "small.png"))
    return paths


def close(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    assert d.mean() <= MEAN_TOL and np.percentile(d, 99) <= P99_TOL, (d.mean(), np.percentile(d, 99))


def test_reduction_never_goes_below_the_side() -> None:
    assert reduction(2048, 1365, 160) == 8  # 1365 // 8 = 170
    assert reduction(2048, 1365, 256) == 4
    assert reduction(2048, 1365, 480) == 2
    assert reduction(2048, 1365, 700) == 1
    assert reduction(2048, 1365, 0) == 1


def test_reduced_decode_matches_full_decode_and_resize(folder: list[str]) -> None:
    for path in folder:
        for side in (64, 150, 300):
            small, full_hw = read_reduced(path, side)
            full = read_image(path)
            assert full_hw == full.shape[:2]
            assert min(small.shape[:2]) >= min(side, min(full.shape[:2]))  # never below the cache side
            close(shrink(small, side, full_hw), shrink(full, side))
    assert read_reduced(folder[0], 64)[0].shape[:2] == (150, 200)  # 1/8 scale really used


def test_exif_rotation_kept_by_reduced_decodes(folder: list[str]) -> None:
    rot = folder[5]
    head = read_header(Path(rot).read_bytes())
    assert (head.width, head.height) == (1200, 1800)
    assert read_reduced(rot, 100)[0].shape[:2] == (225, 150)
    rec = check_file(rot)
    assert (rec["width"], rec["height"]) == (1200, 1800)


def test_first_pass_decodes_each_image_once(folder: list[str], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = images.decode_image

    def counting(data: np.ndarray | bytes, reduce: int = 1) -> np.ndarray:
        calls.append(reduce)
        return real(data, reduce)

    monkeypatch.setattr(images, "decode_image", counting)
    monkeypatch.setattr(checks, "decode_image", counting)
    root = str(tmp_path / "store")
    with StoreFiller(folder, 64, root) as filler:
        assert len(filler.missing()) == len(folder)
        table = check_files(folder, sink=filler)
    assert table["error"].isna().all()
    assert len(calls) == len(folder)  # the checks, the hashes and the cache from one decode each
    assert sum(k > 1 for k in calls) == len(folder) - 1  # every JPEG at reduced scale, the PNG whole
    cached = build_cache(folder, 64, root)  # training reads the cache: nothing is decoded again
    again = check_files(folder)  # and the check cache answers
    assert len(calls) == len(folder) and again.equals(table)
    for i, path in enumerate(folder):
        close(cached[i], shrink(read_image(path), 64))


def test_duplicates_still_found_with_reduced_decodes(folder: list[str]) -> None:
    table = check_files(folder, use_cache=False)
    cluster, exact = find_clusters(table["sha1"].tolist(), phash_ints(table["phash"]), 3)
    assert cluster[0] == cluster[3] and exact[0]  # the byte copy
    assert cluster[1] == cluster[4] and not exact[1]  # the brightened re-encode
    assert len(set(cluster[[0, 1, 2, 5, 6]])) == 5
    full = [str(imagehash.phash(Image.fromarray(read_image(p)))) for p in folder]
    bits = [bin(a ^ b).count("1") for a, b in zip(phash_ints(full), phash_ints(table["phash"]))]
    assert max(bits) <= 4, bits  # the pHash of a reduced decode stays within a few bits of the full decode's


def test_cache_formats(folder: list[str], tmp_path: Path) -> None:
    raw = build_cache(folder, 96, str(tmp_path / "a"), fmt="raw")
    jpeg = build_cache(folder, 96, str(tmp_path / "b"), fmt="jpeg")
    assert jpeg.disk_bytes() < raw.disk_bytes() / 2
    for i in range(len(folder)):
        close(jpeg[i], raw[i])
    assert raw.disk_bytes() == sum(raw[i].size for i in range(len(folder)))


def test_auto_format_follows_the_raw_size() -> None:
    assert resolve_format("auto", 2000, 160) == "raw" and resolve_format("auto", 20_000, 280) == "raw"
    assert resolve_format("auto", 20_000, 480) == "jpeg"
    assert resolve_format("auto", AUTO_RAW_LIMIT // (280 * 373 * 3) + 10, 280) == "jpeg"
    assert resolve_format("jpeg", 1, 999) == "jpeg" and resolve_format("raw", 10**9, 999) == "raw"
    with pytest.raises(PodiumError, match="cache format"):
        resolve_format("webp2", 1, 1)
