"""``podium demo``: a Kaggle-style competition folder built from scikit-learn's handwritten digits (real scans that
ship with scikit-learn, so nothing is downloaded), trained with 3 folds on CPU and predicted into a submission."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from podium.config import PodiumConfig, merge
from podium.core.io import write_csv
from podium.pipeline import train
from podium.runs.run import Run
from podium.validation import validate

DEMO_OVERRIDES = (
    "model.name=resnet18",
    "model.pretrained=none",  # 32 px digits, not photos: a small ResNet from scratch, on any machine, offline or not
    "model.img_size=32",
    "aug.ops=affine",  # digits are not flip-invariant: no flips, no crops that cut strokes off
    "aug.rotate=10",
    "train.epochs=8",
    "train.batch_size=64",
    "train.lr=0.002",
    "train.warmup_epochs=0.5",
    "cv.folds=3",
    "predict.tta=identity",
)


def build_demo(root: str | Path, size: int = 32, seed: int = 0) -> Path:
    """Write train.csv, test.csv, sample_submission.csv and images/ (PNG) for the 1,797 digits; 20% are test."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    ids = [f"digit_{i:04d}" for i in range(len(digits.images))]
    for img, name in zip(digits.images, ids):
        path = root / "images" / f"{name}.png"
        if not path.exists():
            pixels = (img / 16.0 * 255).astype(np.uint8)
            cv2.imwrite(str(path), cv2.resize(pixels, (size, size), interpolation=cv2.INTER_CUBIC))
    labels = digits.target.astype(str)
    train_ids, test_ids, train_y, _ = train_test_split(ids, labels, test_size=0.2, stratify=labels, random_state=seed)
    write_csv(root / "train.csv", pd.DataFrame({"id": train_ids, "label": train_y}))
    write_csv(root / "test.csv", pd.DataFrame({"id": test_ids}))
    write_csv(root / "sample_submission.csv", pd.DataFrame({"id": test_ids, "label": "0"}))
    return root


def demo_config(base: PodiumConfig | None = None, overrides: tuple[str, ...] = ()) -> PodiumConfig:
    """The demo's settings (a small ResNet from scratch at 32 px), then the user's overrides."""
    return merge(base or PodiumConfig(), (*DEMO_OVERRIDES, *overrides))


def run_demo(workdir: str | Path = "podium-demo", overrides: tuple[str, ...] = ()) -> Run:
    """Build the demo folder under ``workdir`` and train on it; runs go to ``workdir/runs``."""
    workdir = Path(workdir).expanduser().resolve()
    data = build_demo(workdir / "digits")
    cfg = demo_config(overrides=(f"run.root={workdir / 'runs'}", "run.name=demo", *overrides))
    return train(data, validate(cfg))  # the user's overrides checked, as podium.api checks every config
