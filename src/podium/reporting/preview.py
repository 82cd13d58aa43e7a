"""``podium preview``: a PNG grid of training images as the model will see them (the configured preprocessing,
augmentations and batch augmentation, on the model's input size), one row per class, with each tile's label(s)
written under it, mixed labels with their weights. Look before you train.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from podium.config import PodiumConfig
from podium.core.io import write_with
from podium.data.folders.ingest import Competition
from podium.data.pixels.preprocessing import Preprocessing
from podium.data.training.batch_aug import create_batch_aug
from podium.data.training.dataset import training_dataset
from podium.models.factory import create_model, resolve_preprocessing

CAPTION = 30


def preview(data_dir: str | Path, cfg: PodiumConfig, out: str | Path | None = None, per_class: int = 8) -> Path:
    """Read ``data_dir`` as training would and write the augmented preview (default:
    ``<run.root>/preview-<data folder>.png``)."""
    from podium.data.integrity import prepare

    data_dir = Path(data_dir).expanduser().resolve()
    comp, _ = prepare(data_dir, cfg.data)
    # the preprocessing (size, interpolation, mean for padding) is the model's own; no weights are needed for it;
    # the image ops (data.preprocess) travel with it, as in training
    prep = resolve_preprocessing(create_model(cfg.model, len(comp.classes), pretrained="none"), cfg.model, cfg.data)
    name = f"preview-{data_dir.name}.png"
    target = Path(out).expanduser() if out else Path(cfg.run.root).expanduser() / name
    if target.is_dir():  # --out FOLDER: the preview goes inside it, under its usual name
        target = target / name
    return preview_grid(comp, cfg, prep, target, per_class, seed=cfg.train.seed)


def preview_grid(comp: Competition, cfg: PodiumConfig, prep: Preprocessing, path: Path, per_class: int = 8,
                 seed: int = 0) -> Path:
    """Write the preview of ``per_class`` augmented images per class (an even count for batch augmentation), each
    read through ``prep``'s image ops."""
    rng = np.random.default_rng(seed)
    onehot = comp.task.onehot(comp.targets, len(comp.classes))
    rows = [rng.choice(np.flatnonzero(onehot[:, c]), size=min(per_class, int(onehot[:, c].sum())), replace=False)
            for c in range(len(comp.classes))]
    chosen = np.concatenate([r for r in rows if len(r)])
    paths = comp.train["path"].to_numpy()[chosen]
    ds = training_dataset(paths, comp.targets[chosen], prep, cfg.aug, seed)
    x, y, _ = ds.__getitems__(list(range(len(chosen))))
    soft = torch.as_tensor(onehot[chosen], dtype=torch.float32)
    mix = create_batch_aug(cfg.aug, comp.task, len(comp.classes))
    if mix is not None:
        np.random.seed(seed)  # timm's Mixup draws from NumPy's global generator
        if len(x) % 2:  # pairs: drop the last tile
            x, y, chosen = x[:-1], y[:-1], chosen[:-1]
        # timm pairs image i with image N-1-i; shuffled first (as training batches are), so pairs cross classes
        perm = torch.as_tensor(rng.permutation(len(x)))
        mixed, soft = mix(x[perm].float().contiguous(), y[perm])
        back = torch.argsort(perm)
        x, soft = mixed[back].clamp(0, 255).to(torch.uint8), soft[back]
    tiles = [_tile(x[i].permute(1, 2, 0).numpy(), _caption(soft[i].numpy(), comp.classes)) for i in range(len(x))]
    grid = _grid(tiles, [len(r) for r in rows], per_class)
    ok, png = cv2.imencode(".png", grid[:, :, ::-1])
    if not ok:
        raise RuntimeError("cv2 could not encode the preview")
    return write_with(path, lambda tmp: tmp.write_bytes(png.tobytes()))


def _caption(weights: np.ndarray, classes: tuple[str, ...]) -> str:
    """'cat' for a plain label, 'cat .62 dog .38' for a mixed one, several labels joined for multilabel."""
    on = [(classes[c], w) for c, w in enumerate(weights) if w > 1e-3]
    if all(abs(w - 1) < 1e-3 for _, w in on):
        return " ".join(name for name, _ in on)
    return " ".join(f"{name} {w:.2f}".replace("0.", ".") for name, w in sorted(on, key=lambda t: -t[1]))


def _tile(img: np.ndarray, caption: str, size: int = 128) -> np.ndarray:
    tile = np.full((size + CAPTION, size, 3), 255, np.uint8)
    tile[:size] = cv2.resize(np.ascontiguousarray(img), (size, size), interpolation=cv2.INTER_AREA)
    cv2.putText(tile, caption[:28], (3, size + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return tile


def _grid(tiles: list[np.ndarray], per_row: list[int], width: int) -> np.ndarray:
    """Tiles in rows of the given lengths (one row per class), padded with white to ``width`` tiles."""
    h, w = tiles[0].shape[:2]
    out, k = [], 0
    for n in per_row:
        n = min(n, len(tiles) - k)
        if n <= 0:
            continue
        row = np.full((h, w * width, 3), 255, np.uint8)
        for j in range(n):
            row[:, j * w:(j + 1) * w] = tiles[k + j]
        out.append(row)
        k += n
    return np.concatenate(out, axis=0)
