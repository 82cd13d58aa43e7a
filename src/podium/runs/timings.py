"""Where a run's time went: preparation (checks, hashes, first-run cache), each fold's cache top-up and epochs
(training and validation), test prediction. Kept in run.json (``Run.write_timings``) and said in one log line."""

from __future__ import annotations

from typing import Any

import numpy as np


def time_breakdown(prepare_s: float, summaries: list[dict[str, Any]], test_s: float, images: int) -> dict[str, Any]:
    """The breakdown from the folds' ``summaries`` (``FoldResult.summary``); folds trained before this process (a
    resumed run's, whose summaries keep no epoch times) are left out. ``images``: training and test images."""
    folds = [{"fold": s["fold"], "cache_s": round(float(s.get("cache_s", 0.0)), 3),
              "epochs_s": [round(float(t), 3) for t in s.get("epochs_wall_s", [])]}
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
