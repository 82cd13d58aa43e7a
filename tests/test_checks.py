from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import corpus
from podium.data.pixels import checks
from podium.data.pixels.checks import check_file, check_files
from podium.data.pixels.images import read_image


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_CACHE", str(tmp_path / "cache"))


def _rgb(h: int = 40, w: int = 56) -> np.ndarray:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def test_bad_files_are_named(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    cv2.imwrite(str(good), _rgb())
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:300])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("this is not an image\n")
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.zeros((1, 9, 3), np.uint8))
    assert check_file(str(good))["error"] is None
    assert "truncated JPEG" in check_file(str(cut))["error"]
    assert "0 bytes" in check_file(str(tmp_path / "empty.png"))["error"]
    assert "cannot be decoded" in check_file(str(tmp_path / "text.jpg"))["error"]
    assert "9x1 pixels" in check_file(str(tiny))["error"]
    assert check_file(str(tmp_path / "gone.png"))["error"] == "file not found"


def test_colour_modes_become_the_same_rgb(tmp_path: Path) -> None:
    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    corpus.png16(tmp_path / "deep.png", rgb)
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(tmp_path / "pal.png")
    Image.fromarray(rgb).convert("L").save(tmp_path / "gray.png")
    corpus.cmyk_jpeg(tmp_path / "cmyk.jpg", rgb)
    modes = {name: check_file(str(tmp_path / name))["mode"] for name in
             ("rgb.png", "deep.png", "rgba.png", "pal.png", "gray.png", "cmyk.jpg")}
    assert modes == {"rgb.png": "RGB", "deep.png": "RGB;16",
                     "rgba.png": "RGBA", "pal.png": "P", "gray.png": "L", "cmyk.jpg": "CMYK"}
    for name in ("deep.png", "rgba.png", "pal.png", "cmyk.jpg"):
        img = read_image(tmp_path / name)
        assert img.dtype == np.uint8 and img.shape == rgb.shape, name
        assert np.abs(img.astype(int) - rgb).mean() < 6, name  # the same colours, not swapped or inverted channels
    gray = read_image(tmp_path / "gray.png")
    assert gray.shape == rgb.shape and (gray[..., 0] == gray[..., 1]).all()


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    rgb = _rgb(40, 80)  # wide
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    Image.fromarray(rgb).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    img = read_image(tmp_path / "rot.jpg")
    assert img.shape[:2] == (80, 40)
    assert np.abs(img.astype(int) - np.rot90(rgb, k=-1)).mean() < 8
    rec = check_file(str(tmp_path / "rot.jpg"))
    assert (rec["width"], rec["height"]) == (40, 80)


def test_checks_are_cached_by_size_and_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = []
    for i in range(4):
        p = tmp_path / "imgs" / f"{i}.png"
        p.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(p), corpus.smooth_image(i))
        paths.append(str(p))
    first = check_files(paths)
    calls: list[str] = []
    real = checks.check_file
    monkeypatch.setattr(checks, "check_file", lambda p: calls.append(p) or real(p))
    again = check_files(paths)
    assert calls == [] and again.equals(first)
    cv2.imwrite(paths[2], corpus.smooth_image(99))  # changed content: new size or mtime
    st = os.stat(paths[2])
    os.utime(paths[2], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = check_files(paths)
    assert calls == [paths[2]]
    assert third["sha1"][2] != first["sha1"][2] and third["sha1"][0] == first["sha1"][0]
