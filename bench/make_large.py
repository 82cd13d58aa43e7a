"""Generate a competition-scale image folder (CSV layout with a test set) from the shared 256 px minis.

Each image is a source image of plant-pathology-2021-mini, randomly cropped, flipped and colour-shifted, upscaled to
``--width`` x ``--height`` (bicubic) and given fine detail (band-limited grain and a leaf-vein-like texture, so the
JPEG carries high frequencies the way a real photograph does), then written as a quality ``--quality`` JPEG.
Deterministic: image i depends only on (``--seed``, i). A few exact and near duplicates are planted on purpose (one
in 500 of each), so the duplicate checks have something to find.

    PYTHONPATH=src python -m bench.make_large --out bench/large/pp20k --count 20000  # 20k: 10.95 GB, 26 min, 2 cores
    PYTHONPATH=src python -m bench.make_large --out /tmp/podium-large-1500 --count 1500     # a small one

Never committed (bench/large/ is git-ignored); an existing file is kept, so an interrupted run resumes.
Layout: train.csv (image,labels), train_images/, test_images/, sample_submission.csv (``--test-share`` of the count).
"""

from __future__ import annotations

import argparse
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "plant-pathology-2021-mini"


def _detail(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Fine texture: grain at 1-2 px plus thin oriented streaks, zero-mean, about +-6 grey levels."""
    grain = cv2.GaussianBlur(rng.normal(0, 7, (h, w)).astype(np.float32), (0, 0), 0.7)
    small = rng.normal(0, 1, (h // 8 + 1, w // 8 + 1)).astype(np.float32)
    streaks = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    streaks = np.sin(streaks * 6.0) * 4.0
    return grain + streaks


def make_image(src: np.ndarray, seed: int, index: int, width: int, height: int) -> np.ndarray:
    """Image ``index``: a random crop, flip and colour shift of ``src`` at ``width`` x ``height`` with fine detail."""
    rng = np.random.default_rng([seed, index])
    h, w = src.shape[:2]
    ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    img = src[y:y + ch, x:x + cw]
    if rng.random() < 0.5:
        img = img[:, ::-1]
    big = cv2.resize(np.ascontiguousarray(img), (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    big *= rng.uniform(0.85, 1.15, 3).astype(np.float32)
    big += _detail(rng, height, width)[:, :, None]
    return np.clip(big, 0, 255).astype(np.uint8)


def _write(job: tuple[str, str, int, int, int, int, int, str | None]) -> int:
    src_path, out_path, seed, index, width, height, quality, near = job
    if os.path.exists(out_path):
        return 0
    src = cv2.imread(src_path, cv2.IMREAD_COLOR)
    img = make_image(src, seed, index, width, height)
    if near is not None:  # a near duplicate of image `near`: the same picture, slightly brighter, re-encoded
        img = np.clip(img.astype(np.int16) + 6, 0, 255).astype(np.uint8)
    tmp = out_path + ".tmp.jpg"
    cv2.imwrite(tmp, img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    os.replace(tmp, out_path)
    return 1


def plan(count: int, test_share: float, seed: int) -> pd.DataFrame:
    """One row per generated image: split, name, source image, the index whose pixels it uses, labels, kind."""
    table = pd.read_csv(SOURCE / "train.csv")
    rng = np.random.default_rng(seed)
    src = rng.integers(0, len(table), count)
    n_test = int(round(count * test_share))
    rows = []
    for i in range(count):
        kind, pixels = "", i
        if i >= 2 and i % 500 == 1:  # exact duplicate of the previous image (same bytes)
            kind, pixels, src[i] = "exact", i - 1, src[i - 1]
        elif i >= 2 and i % 500 == 2:  # near duplicate of image i - 2
            kind, pixels, src[i] = "near", i - 2, src[i - 2]
        split = "test" if i >= count - n_test else "train"
        rows.append({"split": split, "image": f"{i:06d}.jpg", "source": table["image"].iloc[src[i]],
                     "labels": table["labels"].iloc[src[i]], "pixels": pixels, "kind": kind})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--height", type=int, default=1365)
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--test-share", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    out = Path(args.out)
    rows = plan(args.count, args.test_share, args.seed)
    for d in ("train_images", "test_images"):
        (out / d).mkdir(parents=True, exist_ok=True)
    jobs = []
    for r in rows.itertuples():
        path = out / f"{r.split}_images" / r.image
        if r.kind == "exact":
            continue  # copied after its original exists
        near = str(r.pixels) if r.kind == "near" else None
        jobs.append((str(SOURCE / "train_images" / r.source), str(path), args.seed, int(r.pixels), args.width,
                     args.height, args.quality, near))
    with ProcessPoolExecutor(args.workers) as pool:
        made = sum(pool.map(_write, jobs, chunksize=8))
    for r in rows[rows["kind"] == "exact"].itertuples():
        orig = rows.iloc[r.pixels]
        dst = out / f"{r.split}_images" / r.image
        if not dst.exists():
            shutil.copyfile(out / f"{orig.split}_images" / orig.image, dst)
    train, test = rows[rows["split"] == "train"], rows[rows["split"] == "test"]
    train[["image", "labels"]].to_csv(out / "train.csv", index=False)
    test.assign(labels="healthy")[["image", "labels"]].to_csv(out / "sample_submission.csv", index=False)
    size = sum(f.stat().st_size for f in out.rglob("*.jpg"))
    print(f"{out}: {len(train)} train + {len(test)} test images, {made} written now, {size / 1e9:.3f} GB")


if __name__ == "__main__":
    main()
