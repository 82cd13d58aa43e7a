"""Generated problem data for the integrity tests: duplicate images, odd colour modes and broken files."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import datagen
from podium.cli import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
            ) -> tuple[int, str, str]:
    """Run the console entry point (``podium ...``) in-process; return exit status, stdout and stderr."""
    monkeypatch.setattr(sys, "argv", ["podium", *args])
    with pytest.raises(SystemExit) as e:
        main()
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out, out.err


def assert_one_error(code: int, err: str, expected: list[str], tmp_path: Path, runs: Path) -> None:
    """Exit status 2, one ``error:`` line holding every expected text, no traceback, no run folder, no temp file."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for text in expected:
        assert text in lines[0], lines[0]
    assert not runs.exists() or not any(runs.iterdir())  # stopped before any run folder was made
    assert not list(tmp_path.rglob("*.tmp"))  # and left no half-written file anywhere


def add_duplicates(root: Path, copies: dict[str, tuple[str, str]], near: bool = False, folder: str = "train_images",
                   csv: str = "train.csv") -> None:
    """For each ``new_id: (source_id, label)``, add a byte copy (or a slightly brighter re-encode) of the source image
    under the new id, and its row to ``csv`` (the label column is the CSV's second column)."""
    df = pd.read_csv(root / csv, dtype=str, keep_default_na=False)
    rows = []
    for new, (src, label) in copies.items():
        src_path = next((root / folder).glob(f"{src}.*"))
        dst = root / folder / f"{new}{src_path.suffix}"
        if near:
            img = cv2.imread(str(src_path))  # a little brighter: other bytes, (nearly) the same pHash
            cv2.imwrite(str(dst), np.clip(img.astype(int) + 3, 0, 255).astype(np.uint8))
        else:
            shutil.copyfile(src_path, dst)
        rows.append({df.columns[0]: new, df.columns[1]: label})
    pd.concat([df, pd.DataFrame(rows)], ignore_index=True).to_csv(root / csv, index=False)


def smooth_image(seed: int, size: int = 48) -> np.ndarray:
    """A BGR image of smooth random blobs: distinct seeds give pHashes far apart, unlike the striped class images."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def cmyk_jpeg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).convert("CMYK").save(path, "JPEG", quality=95)


def png16(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rgb[:, :, ::-1].astype(np.uint16) * 257)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def odd_modes(root: Path) -> Path:
    """A csv_single folder whose images include CMYK JPEG, 16-bit PNG, palette, RGBA and grayscale files."""
    datagen.csv_single(root, ext=".png")
    for k, i in enumerate(range(0, 48, 5)):
        path = root / "train_images" / f"img{i:03d}.png"
        rgb = cv2.imread(str(path))[:, :, ::-1]
        path.unlink()
        kind = k % 5
        if kind == 0:
            cmyk_jpeg(path.with_suffix(".jpg"), rgb)
        elif kind == 1:
            png16(path, rgb)
        elif kind == 2:
            Image.fromarray(rgb).convert("P").save(path)
        elif kind == 3:
            Image.fromarray(rgb).convert("RGBA").save(path)
        else:
            Image.fromarray(rgb).convert("L").save(path)
    test = root / "test_images" / "t000.png"
    rgb = cv2.imread(str(test))[:, :, ::-1]
    test.unlink()
    cmyk_jpeg(test.with_suffix(".jpg"), rgb)
    return root
