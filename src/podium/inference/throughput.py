"""What prediction costs on this machine, measured and read back: ``measure_inference`` records a prediction's
per-fold seconds (``Prediction.timings``) and the cost of decoding a fresh image set in the run folder
(``Run.write_inference``); ``run_throughput`` turns what a run folder holds into per-image and per-fold seconds for
``podium.inference.forecast``, from the best source it has:

    prediction   the latest prediction's record (training's test prediction, or ``podium predict RUN``): load, read
                 and predict seconds per fold model, the fresh decode per image; the OOF passes with and without TTA
                 split prediction into a part per image and a part per view
    oof          no test prediction was measured (no test set): the OOF pass of each fold (cached images, the run's
                 views), the fresh decode from the record; model loading not measured
    one batch    as prediction, but each fold model predicted a single batch, so its warm-up is in the rate (errs
                 long on a larger set)
    rough        a run trained before these were recorded: its whole test prediction's seconds (loading, decoding
                 and TTA included) per test image and fold
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

import numpy as np
import torch

from podium.config import PodiumConfig
from podium.core.errors import PodiumError
from podium.data.pixels.cache import cache_side_of, fresh_decode_seconds
from podium.data.pixels.image_ops import ops_of
from podium.runs.checkpoint import Checkpoint
from podium.runs.run import Run
from podium.runs.timings import inference_record

DECODE_SAMPLE = 48  # images decoded into a temporary store to time a fresh image set's decode


@dataclass(frozen=True)
class Throughput:
    """One run's prediction cost on the machine that measured it: seconds per fold model to build and load it
    (``load_s``), per image and fold model to read its cached pixels (``read_s``), to predict it apart from the views
    (``base_s``) and per view (``view_s``), per image once to decode a fresh image set (``decode_s``, at cache side
    ``side``: members of the same side share it), where the numbers come from (``source``) and the device."""

    load_s: float
    read_s: float
    base_s: float
    view_s: float
    decode_s: float
    side: int
    source: str
    device: str

    def fold_seconds(self, n_images: int, views: int) -> float:
        """Seconds of one fold model predicting ``n_images`` fresh images with ``views`` views, loading included."""
        return self.load_s + n_images * (self.read_s + self.base_s + views * self.view_s)


def measure_inference(run: Run, timings: tuple[dict, ...], paths: list[str], ckpt: Checkpoint, device: str) -> dict:
    """Record in ``run`` what predicting ``paths`` measured (``Prediction.timings``; none: a run without a test set,
    whose OOF passes stand in) and the seconds per image of decoding
    a fresh set, timed on a sample of ``paths`` decoded into a temporary store (0 with data.cache=false: each fold
    then decodes inside its own read and predict seconds). Returns the record."""
    cfg, prep = ckpt.config, ckpt.preprocessing
    side = cache_side_of(prep.hw, cfg.data)
    decode = 0.0
    if cfg.data.cache and paths:
        pick = np.unique(np.linspace(0, len(paths) - 1, min(DECODE_SAMPLE, len(paths))).astype(int))
        decode = fresh_decode_seconds([paths[i] for i in pick], side, ops_of(prep), _store_format(cfg, len(paths),
                                                                                                  side))
    record = {**inference_record(timings, decode, cfg.data.cache, device, torch.get_num_threads()),
              "cache_side": side}
    run.write_inference(record)
    return record


def _store_format(cfg: PodiumConfig, images: int, side: int) -> str:
    """The cache format a store of ``images`` images would get (``data.cache_format``, auto resolved)."""
    from podium.data.pixels.cache_formats import resolve_format

    return resolve_format(cfg.data.cache_format, images, side)


def run_throughput(run: Run) -> Throughput:
    """The prediction cost of ``run``'s fold models from the best source its folder holds (module doc); a run with
    none is a one-line error saying how to measure it."""
    record, timings = run.inference, run.timings
    oof = [f["oof"] for f in timings.get("folds", []) if "oof" in f]
    if record.get("folds"):
        return _from_prediction(record, oof)
    if oof:
        per_view = median(o["s"] / (o["images"] * o["views"]) for o in oof)
        return Throughput(0.0, 0.0, 0.0, per_view, float(record.get("decode_s_per_image", 0.0)),
                          int(record.get("cache_side", 0)), "oof", record.get("device", "?"))
    if timings.get("test_s", 0) > 0 and run.test_predictions_path.is_file():
        n_test, folds = len(run.test_predictions), max(len(run.folds_done()), 1)
        views = _views(run)
        return Throughput(0.0, 0.0, 0.0, timings["test_s"] / (n_test * folds * views), 0.0, 0, "rough", "?")
    raise PodiumError(f"{run.path} has no measured prediction time (trained before podium recorded it, without a "
                      f"test set); run `podium predict {run.path} --images DIR` once on a few hundred images to "
                      "measure it, then estimate again.")


def _from_prediction(record: dict, oof: list[dict]) -> Throughput:
    """Throughput from a prediction's record: medians over its fold models (the smallest read: the first fold's
    may have decoded); the steady rate from the batches after the first, whose extra time (warm-up) counts once per
    fold model like its loading; the prediction split into per-image and per-view parts by the OOF passes' ratio."""
    folds = record["folds"]
    steady = [f for f in folds if f.get("first_s", 0) > 0 and f["images"] > f["batch"]]
    if steady:
        per_image = median((f["predict_s"] - f["first_s"]) / (f["images"] - f["batch"]) for f in steady)
        warm = median(max(f["first_s"] - f["batch"] * per_image, 0.0) for f in steady)
    else:  # one batch per fold model: its warm-up is in the rate, which errs long on a larger set
        per_image, warm = median(f["predict_s"] / f["images"] for f in folds), 0.0
    views = folds[0]["views"]
    base = per_image * _base_fraction(oof, views)
    return Throughput(median(f["load_s"] for f in folds) + warm, min(f["read_s"] / f["images"] for f in folds),
                      base, (per_image - base) / views, float(record.get("decode_s_per_image", 0.0)),
                      int(record.get("cache_side", 0)), "prediction" if steady else "one batch",
                      record.get("device", "?"))


def _base_fraction(oof: list[dict], views: int) -> float:
    """The share of a prediction at ``views`` views that does not grow with the views (loading and normalising a
    batch), from the OOF passes with V views and without TTA on the same images: t_V = n (b + V c), t_1 = n (b + c).
    0 (all per view) when no fold ran both passes."""
    pairs = [o for o in oof if o.get("plain_s", 0) > 0 and o["views"] > 1]
    if not pairs:
        return 0.0
    c = median((o["s"] - o["plain_s"]) / (o["images"] * (o["views"] - 1)) for o in pairs)
    b = median(o["plain_s"] / o["images"] for o in pairs) - c
    b, c = max(b, 0.0), max(c, 1e-12)
    return b / (b + views * c)


def _views(run: Run) -> int:
    """The number of views (views x scales) the run predicts with by default."""
    from podium.engine.tta import view_names

    cfg = run.config
    return len(view_names(cfg.predict.tta)) * len(cfg.predict.scales)
