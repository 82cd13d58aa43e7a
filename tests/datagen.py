"""Tiny generated competition folders for tests: learnable synthetic images (each class has its own colour and
stripe pattern), written in every layout podium reads."""

from __future__ import annotations

import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

TINY = (
    "model.name=test_resnet",
    "model.pretrained=none",  # test_resnet has no offline weights; auto would (rightly) stop
    "model.img_size=32",
    "train.epochs=1",
    "train.batch_size=16",
    "train.num_workers=0",
    "train.threads=1",
    "cv.folds=2",
    "predict.tta=identity,hflip",
    "data.check_images=true",
    "run.report=false",  # tests/test_reporting.py builds reports; the other tiny runs skip them for speed
)


def class_image(label: int, rng: np.random.Generator, size: int = 40) -> np.ndarray:
    """A BGR image whose colour and stripe orientation depend on ``label`` (so a tiny model can learn it)."""
    palette = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40), (200, 40, 200), (40, 200, 200)]
    img = np.full((size, size, 3), 30, np.uint8) + rng.integers(0, 30, (size, size, 3), dtype=np.uint8)
    color = palette[label % len(palette)]
    step = 4 + 2 * (label % 3)
    for i in range(0, size, step):
        if label % 2:
            img[:, i : i + 2] = color
        else:
            img[i : i + 2, :] = color
    return img


def multi_image(labels: list[int], rng: np.random.Generator, size: int = 40) -> np.ndarray:
    """A BGR image with one coloured quadrant per active label."""
    img = np.full((size, size, 3), 20, np.uint8) + rng.integers(0, 20, (size, size, 3), dtype=np.uint8)
    half = size // 2
    palette = [(220, 40, 40), (40, 220, 40), (40, 40, 220), (220, 220, 40)]
    for k in labels:
        r, c = divmod(k % 4, 2)
        img[r * half : (r + 1) * half, c * half : (c + 1) * half] = palette[k % 4]
    return img


def write_image(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def csv_single(root: Path, n: int = 48, classes: tuple[str, ...] = ("cat", "dog", "fox"), n_test: int = 12,
               ext: str = ".png", ids_with_ext: bool = False, seed: int = 0) -> Path:
    """train.csv (id,label), train_images/, test_images/ and sample_submission.csv (id,label)."""
    rng = np.random.default_rng(seed)
    labels = [classes[i % len(classes)] for i in range(n)]
    ids = [f"img{i:03d}" for i in range(n)]
    for i, lab in zip(ids, labels):
        write_image(root / "train_images" / f"{i}{ext}", class_image(classes.index(lab), rng))
    shown = [f"{i}{ext}" if ids_with_ext else i for i in ids]
    pd.DataFrame({"image_id": shown, "label": labels}).to_csv(root / "train.csv", index=False)
    test_ids = [f"t{i:03d}" for i in range(n_test)]
    for k, i in enumerate(test_ids):
        write_image(root / "test_images" / f"{i}{ext}", class_image(k % len(classes), rng))
    pd.DataFrame({"image_id": test_ids, "label": classes[0]}).to_csv(root / "sample_submission.csv", index=False)
    return root


def csv_multilabel(root: Path, n: int = 48, n_test: int = 10, onehot: bool = False, seed: int = 0) -> Path:
    """Space-separated labels (Plant Pathology 2021) or one 0/1 column per class (2020), with test images."""
    rng = np.random.default_rng(seed)
    classes = ["healthy", "rust", "scab", "spot"]
    rows = []
    for i in range(n):
        active = [i % 4] if i % 3 else sorted({i % 4, (i + 1) % 4})
        write_image(root / "images" / f"m{i:03d}.jpg", multi_image(active, rng))
        rows.append((f"m{i:03d}.jpg", active))
    if onehot:
        df = pd.DataFrame({"image_id": [r[0] for r in rows]})
        for k, c in enumerate(classes):
            df[c] = [int(k in r[1]) for r in rows]
    else:
        df = pd.DataFrame({"image": [r[0] for r in rows], "labels": [" ".join(classes[k] for k in r[1]) for r in rows]})
    df.to_csv(root / "train.csv", index=False)
    test_ids = [f"q{i:03d}.jpg" for i in range(n_test)]
    for k, i in enumerate(test_ids):
        write_image(root / "test_images" / i, multi_image([k % 4], rng))
    if onehot:
        sample = pd.DataFrame({"image_id": test_ids, **{c: 0.25 for c in classes}})
    else:
        sample = pd.DataFrame({"image": test_ids, "labels": "healthy"})
    sample.to_csv(root / "sample_submission.csv", index=False)
    return root


def folders(root: Path, per_class: int = 12, classes: tuple[str, ...] = ("early", "late", "healthy"),
            splits: tuple[str, ...] = ("train",), test: int = 0, seed: int = 0) -> Path:
    """A folder per class under each split (train/<class>/x.jpg), optionally a flat test/ folder."""
    rng = np.random.default_rng(seed)
    for split in splits:
        for k, c in enumerate(classes):
            for i in range(per_class):
                write_image(root / split / c / f"{split}_{c}_{i:03d}.jpg", class_image(k, rng))
    for i in range(test):
        write_image(root / "test" / f"x{i:03d}.jpg", class_image(i % len(classes), rng))
    return root


def hidden_test_set(data: Path, root: Path, n: int = 20, seed: int = 5) -> Path:
    """A copy of the competition folder ``data`` whose test images and sample submission are replaced by another,
    larger set (other ids, shuffled order), as Kaggle swaps in the hidden test set."""
    shutil.copytree(data, root, ignore=shutil.ignore_patterns("test_images", "sample_submission.csv"))
    rng = np.random.default_rng(seed)
    ids = [f"hidden_{i:04d}" for i in rng.permutation(n)]
    for k, i in enumerate(ids):
        write_image(root / "test_images" / f"{i}.png", class_image(k % 3, rng))
    pd.DataFrame({"image_id": ids, "label": "cat"}).to_csv(root / "sample_submission.csv", index=False)
    return root


def unfinished(run: Path, dest: Path) -> Path:
    """A copy of the finished run folder ``run`` as an interrupted one leaves it before any fold finished: each fold's
    best.pt is there, but no fold's done.json and no metrics.json."""
    shutil.copytree(run, dest)
    for path in [*dest.glob("fold*/done.json"), dest / "metrics.json"]:
        path.unlink()
    shutil.rmtree(dest / "export", ignore_errors=True)  # what an earlier test exported from the finished run
    return dest


def snapshot(*folders: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``folders`` with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for f in folders for p in sorted(f.rglob("*"))}


@contextmanager
def read_only(*folders: Path) -> Iterator[None]:
    """Make ``folders`` read-only (as /kaggle/input is) and check that nothing below them changed (root ignores the
    permission bits, so the snapshot is what proves it)."""
    before = snapshot(*folders)
    modes = {p: p.stat().st_mode for f in folders for p in [f, *f.rglob("*")]}
    for p in modes:
        p.chmod(modes[p] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    assert snapshot(*folders) == before
