"""Per-image cost of podium's default training augmentation vs the same ops as stock albumentations transforms, on
the decoded-image cache's 160 px images of potato (one thread, no loader: the work a loader worker does per image).

    python -m bench.aug_cost [--size 128] [--images 256] [--repeats 3]

podium: random_resized_crop, hflip, vflip, affine (half the time) fused into one warp, then colour jitter as one
linear map, seeded per image as in training. Stock: A.RandomResizedCrop, A.HorizontalFlip, A.VerticalFlip, A.Affine
(same ranges, reflected borders, p=0.5), A.ColorJitter (same strengths, p=0.8). Also measured: one rotation by
cv2.warpAffine on the 3-channel image vs on a 4-channel copy (OpenCV's vectorised path), the round trip included.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import albumentations as A
import cv2
import numpy as np

from bench.common import loader_parser, machine, potato_sample, show, write_results
from podium.data.pixels.cache import decoded_images
from podium.data.training.transforms import create_transform, interpolation, seed_transform


def per_image_us(fn: Callable[[int], object], n: int, repeats: int) -> tuple[float, list[float]]:
    """Median microseconds per call of ``fn(i)`` over ``n`` calls, ``repeats`` times."""
    fn(0)
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        runs.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(runs), runs


def main() -> None:
    args = loader_parser(__doc__, 256).parse_args()
    cv2.setNumThreads(1)
    cfg, comp, pick, prep = potato_sample(args.model, args.size, args.images, shuffle=False)
    paths = comp.train["path"].to_numpy()[pick].tolist()
    cache = decoded_images(paths, prep.size, cfg.data)
    images = [cache[i] for i in range(len(paths))]
    a = cfg.aug
    podium = create_transform(prep, a, train=True)
    stock = A.Compose([
        A.RandomResizedCrop((prep.size, prep.size), scale=(a.scale_min, 1.0), interpolation=interpolation(prep)),
        A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5),
        A.Affine(scale=(0.9, 1.1), translate_percent=(-0.06, 0.06), rotate=(-a.rotate, a.rotate),
                 interpolation=interpolation(prep), border_mode=cv2.BORDER_REFLECT_101, p=0.5),
        A.ColorJitter(a.strength, a.strength, a.strength, min(0.05, a.strength / 4), p=0.8),
    ], seed=0)

    def run_podium(i: int) -> np.ndarray:
        seed_transform(podium, i)
        return podium(image=images[i % len(images)])["image"]

    def run_stock(i: int) -> np.ndarray:
        return stock(image=images[i % len(images)])["image"]

    img = images[0]
    m = cv2.getRotationMatrix2D((img.shape[1] / 2, img.shape[0] / 2), 10, 0.9)
    out = (prep.size, prep.size)
    three = lambda i: cv2.warpAffine(img, m, out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)  # noqa: E731
    four = lambda i: cv2.cvtColor(cv2.warpAffine(cv2.cvtColor(img, cv2.COLOR_RGB2RGBA), m, out,  # noqa: E731
                                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101),
                                  cv2.COLOR_RGBA2RGB)
    np.testing.assert_array_equal(three(0), four(0))  # the same pixels
    n = len(images) * 4
    p, pr = per_image_us(run_podium, n, args.repeats)
    s, sr = per_image_us(run_stock, n, args.repeats)
    w3, w3r = per_image_us(three, n, args.repeats)
    w4, w4r = per_image_us(four, n, args.repeats)
    rows = [("stock albumentations / podium (cost per image)", f"{s / p:.2f}x"),
            ("podium default augmentation us/image", f"{p:.0f}  {[round(v) for v in pr]}"),
            ("stock albumentations us/image", f"{s:.0f}  {[round(v) for v in sr]}"),
            ("warpAffine 3-channel / 4-channel round trip", f"{w3 / w4:.2f}x ({w3:.0f} vs {w4:.0f} us)"),
            ("setup", f"{len(images)} potato images from the cache (short side {img.shape[0]}), to {prep.size} px, "
                      f"{','.join(a.ops)}, 1 thread")]
    show(rows)
    write_results("aug_cost", {"machine": machine(), "args": vars(args), "podium_us": pr, "stock_us": sr,
                               "warp3_us": w3r, "warp4_us": w4r}, rows,
                  "Augmentation only, one thread; medians of repeats.")


if __name__ == "__main__":
    main()
