"""Data-loader images/second with podium's decoded-image cache vs a per-item ``cv2.imread`` + resize +
albumentations Dataset like the seeds' (same augmentations, same workers, same batch). Target: >= 3x on the 256 px
potato JPEGs.

    python -m bench.cache_speedup [--size 128] [--workers -1] [--images 1024] [--repeats 3]

Only the loader runs (no model). Both loaders are iterated alternately in one process after a warm-up pass each (so
both read the JPEGs from the OS page cache); the ratio is of the medians.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from bench.common import loader_parser, machine, potato_sample, show, write_results
from podium.data.pixels.cache import cache_side, decoded_images
from podium.data.training.dataset import EpochShuffleSampler, ImageDataset, collate
from podium.data.training.transforms import create_transform
from podium.engine.accel import num_workers


class SeedsDataset(Dataset):
    """The seeds' loader: decode the file on every access, resize, augment."""

    def __init__(self, paths: list[str], targets: np.ndarray, side: int, transform: Callable) -> None:
        self.paths, self.targets, self.side, self.transform = paths, targets, side, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        i = key % len(self.paths)  # the sampler's keys are epoch * len + row
        img = cv2.cvtColor(cv2.imread(self.paths[i]), cv2.COLOR_BGR2RGB)
        img = cv2.resize(img, (self.side, self.side), interpolation=cv2.INTER_AREA)
        img = self.transform(image=img)["image"]
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), torch.as_tensor(self.targets[i]), i


def rate(loader: DataLoader, epoch: int) -> float:
    loader.sampler.set_epoch(epoch)
    t0, n = time.perf_counter(), 0
    for x, _, _ in loader:
        n += len(x)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = loader_parser(__doc__, 1024)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=-1, help="-1: podium's default for the device")
    ap.add_argument("--device", default="cpu", help="only chooses podium's default worker count")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg, comp, pick, prep = potato_sample(args.model, args.size, args.images)
    paths, targets = comp.train["path"].to_numpy()[pick].tolist(), comp.targets[pick]
    t0 = time.perf_counter()
    images = decoded_images(paths, prep.size, cfg.data)
    build_s = time.perf_counter() - t0
    workers = num_workers(args.workers, args.device)
    side = cache_side(prep.size, cfg.data.cache_scale)

    def loader(ds: Dataset) -> DataLoader:  # podium's collate stacks the seeds' items the default way
        return DataLoader(ds, batch_size=args.batch, sampler=EpochShuffleSampler(len(ds), 0), num_workers=workers,
                          persistent_workers=workers > 0, drop_last=True, collate_fn=collate)

    cached = loader(ImageDataset(paths, targets, create_transform(prep, cfg.aug, train=True), images, seed=0))
    seeds = loader(SeedsDataset(paths, targets, side, create_transform(prep, cfg.aug, train=True)))
    print(f"{len(paths)} potato images, augmentations {','.join(cfg.aug.ops)} to {prep.size}px, {workers} workers; "
          f"cache (side {side}) built/checked in {build_s:.1f} s", flush=True)
    rate(cached, 0), rate(seeds, 0)  # warm-up: workers, page cache
    podium, plain = [], []
    for r in range(args.repeats):
        podium.append(rate(cached, r + 1))
        plain.append(rate(seeds, r + 1))
        print(f"repeat {r + 1}: podium cache {podium[-1]:.0f} img/s, imread+resize {plain[-1]:.0f} img/s", flush=True)
    p, s = statistics.median(podium), statistics.median(plain)
    rows = [("speedup (podium cache / imread dataset)", f"{p / s:.2f}x (target >= 3x)"),
            ("podium cache img/s (median)", f"{p:.0f}  {[round(v) for v in podium]}"),
            ("imread+resize+albumentations img/s (median)", f"{s:.0f}  {[round(v) for v in plain]}"),
            ("setup", f"{len(paths)} images, batch {args.batch}, {workers} workers, {prep.size}px, cache side {side}")]
    show(rows)
    write_results("cache_speedup", {"machine": machine(), "args": vars(args), "speedup": p / s, "podium_img_s": podium,
                                    "imread_img_s": plain, "workers": workers, "cache_build_s": build_s}, rows,
                  "Loader only (no model), training augmentations on; medians of repeats, run alternately.")


if __name__ == "__main__":
    main()
