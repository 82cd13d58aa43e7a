"""Where a run's time went: preparation (checks, hashes, first-run cache), each fold's cache top-up, epochs
(training and validation) and OOF pass (images, views, seconds), test prediction. Kept in run.json
(``Run.write_timings``) and said in one log line.

What prediction measured (``inference_record``, ``Run.write_inference``): per fold model the seconds to build and load
it, to read the images (from the cache) and to predict them with its views, and the seconds per image that decoding a
fresh image set costs (``cache.fresh_decode_seconds``): what ``podium.inference.forecast`` extrapolates."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def time_breakdown(prepare_s: float, summaries: list[dict[str, Any]], test_s: float, images: int,
                   oof: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The breakdown from the folds' ``summaries`` (``FoldResult.summary``); folds trained before this process (a
    resumed run's, whose summaries keep no epoch times) are left out. ``images``: training and test images;
    ``oof``: each fold's OOF passes (``FoldResult.oof_timing``: images, views, seconds with and without TTA)."""
    oof = oof or {}
    folds = [{"fold": s["fold"], "cache_s": round(float(s.get("cache_s", 0.0)), 3),
              "epochs_s": [round(float(t), 3) for t in s.get("epochs_wall_s", [])],
              **({"oof": {k: round(v, 4) if isinstance(v, float) else v for k, v in oof[s["fold"]].items()}}
                 if s["fold"] in oof else {})}
             for s in summaries if "epochs_wall_s" in s]
    return {"prepare_s": round(prepare_s, 3), "folds": folds, "test_s": round(test_s, 3), "images": int(images)}


def timing_line(t: dict[str, Any]) -> str:
    """One line of the breakdown for the log."""
    epochs = [s for f in t["folds"] for s in f["epochs_s"]]
    cache = sum(f["cache_s"] for f in t["folds"])
    per_epoch = f"{len(epochs)} epoch(s), {sum(epochs):.1f} s ({np.median(epochs):.1f} s median)" if epochs else \
        "no epoch trained here"
    return (f"time: checks, hashes and cache {t['prepare_s']:.1f} s ({t['images']} images, one decode each); "
            f"cache top-up in folds {cache:.1f} s; {per_epoch}; test prediction {t['test_s']:.1f} s")


def fold_throughput(fold: int, images: int, views: int, load_s: float, read_s: float, predict_s: float,
                    batch: int, first_s: float = 0.0) -> dict[str, Any]:
    """One fold model's prediction of ``images`` images with ``views`` TTA views (views x scales): seconds to build
    and load it, to read the images (decoding those not cached) and to predict them, of which ``first_s`` the first
    batch (its warm-up: the rate of the others is the steady one), and the batch size."""
    return {"fold": int(fold), "images": int(images), "views": int(views), "load_s": round(load_s, 4),
            "read_s": round(read_s, 4), "predict_s": round(predict_s, 4), "first_s": round(first_s, 4),
            "batch": int(batch)}


def inference_record(folds: tuple[dict[str, Any], ...] | list[dict[str, Any]], decode_s: float, cached: bool,
                     device: str, threads: int) -> dict[str, Any]:
    """What a prediction measured: each fold model's ``fold_throughput``, the seconds per image of decoding a fresh
    image set (``cached``: data.cache on, so it is paid once per image; off: inside ``read_s``/``predict_s``), the
    device and torch's threads, and when."""
    return {"folds": list(folds), "decode_s_per_image": round(decode_s, 6), "cached": bool(cached),
            "device": device, "threads": int(threads), "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
