"""Ensembles of checkpoints on a list of images: every fold's model (each with its own preprocessing from its
checkpoint) predicts with TTA through ``predict_logits``, and the folds' probabilities are averaged."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator

from podium.core.errors import PodiumError
from podium.data.training.dataset import evaluation_dataset
from podium.engine.accel import eval_batch_size, make_loader, num_workers
from podium.engine.loop import predict_logits
from podium.engine.tta import view_names
from podium.runs.checkpoint import Checkpoint
from podium.runs.run import Run
from podium.runs.timings import fold_throughput
from podium.tasks.submission import SubmissionFormat, default_format, write_submission
from podium.tasks.task import Task


@dataclass(frozen=True)
class Prediction:
    """Averaged probabilities for ``ids`` with what is needed to decode them (the run's decisions)."""

    ids: list[str]
    probs: np.ndarray
    task: Task
    classes: list[str]
    decisions: dict
    by_fold: dict[int, np.ndarray] = field(default_factory=dict)  # each fold model's probabilities (or fold blend)
    timings: tuple[dict, ...] = ()  # each checkpoint's seconds (runs.timings.fold_throughput)

    @property
    def threshold(self) -> float | list[float]:
        """The multilabel decision threshold(s) (0.5 when the run fitted none)."""
        return self.decisions.get("threshold", 0.5)


def predict_checkpoints(checkpoints: list[Checkpoint], ids: list[str], paths: list[str], accelerator: Accelerator,
                        views: tuple[str, ...] | None = None, batch_size: int = 0, workers: int = -1) -> Prediction:
    """Average the class probabilities of ``checkpoints`` on the images at ``paths``, each with its own
    preprocessing and TTA ``views`` (default: the views the checkpoint was trained to use). ``timings``: each
    checkpoint's seconds (``fold_throughput``)."""
    if not checkpoints:
        raise PodiumError("No checkpoint to predict with.")
    first, probs, timings = checkpoints[0], [], []
    for ckpt in checkpoints:
        if (ckpt.classes, ckpt.task) != (first.classes, first.task):
            raise PodiumError(f"Fold {ckpt.fold} predicts other classes than fold {first.fold}; they cannot be "
                              "averaged.")
        logits, timing = _checkpoint_logits(ckpt, paths, accelerator, views, batch_size, workers)
        probs.append(ckpt.resolved_task().probabilities(logits))
        timings.append(timing)
    folds = [c.fold for c in checkpoints]
    by_fold = dict(zip(folds, probs)) if len(set(folds)) == len(folds) else {}  # checkpoints of one run each
    return Prediction(list(ids), np.mean(probs, axis=0), first.resolved_task(), list(first.classes),
                      dict(first.decisions), by_fold, tuple(timings))


def _checkpoint_logits(ckpt: Checkpoint, paths: list[str], accelerator: Accelerator, views: tuple[str, ...] | None,
                       batch_size: int, workers: int) -> tuple[np.ndarray, dict]:
    """One checkpoint's logits of the images at ``paths`` and where its time went: building the model and loading
    its weights, reading the images (decoding those not in the cache), predicting them with its views."""
    cfg, prep, device = ckpt.config, ckpt.preprocessing, accelerator.device.type
    t0 = time.perf_counter()
    model = ckpt.build_model().to(accelerator.device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    t1 = time.perf_counter()
    dataset = evaluation_dataset(paths, prep, data=cfg.data)  # the checkpoint's own image ops and resize
    bs = batch_size or eval_batch_size(cfg)
    loader = accelerator.prepare_data_loader(make_loader(dataset, bs, num_workers(workers, device), device))
    t2, stamps = time.perf_counter(), []
    views = views or cfg.predict.tta
    logits = predict_logits(model, loader, prep, accelerator, views, cfg.train.channels_last,
                            scales=cfg.predict.scales, description=f"predict fold {ckpt.fold}", stamps=stamps)
    return logits, fold_throughput(ckpt.fold, len(paths), len(view_names(views)) * len(cfg.predict.scales),
                                   load_s=t1 - t0, read_s=t2 - t1, predict_s=time.perf_counter() - t2, batch=bs,
                                   first_s=stamps[0] - t2 if stamps else 0.0)


def probability_table(pred: Prediction, id_col: str = "id") -> pd.DataFrame:
    """ids, decoded label(s), one probability column per class and the task's extra columns (an ordinal score)."""
    labels = pred.task.decode(pred.probs, pred.decisions, pred.classes)
    df = pd.DataFrame(pred.probs, columns=pred.classes)
    for name, values in pred.task.columns(pred.probs).items():
        df[name] = values
    df.insert(0, default_format(pred.task, pred.classes, pred.ids).columns[1], labels)
    df.insert(0, id_col, pred.ids)
    return df


def fold_table(pred: Prediction) -> pd.DataFrame | None:
    """Each fold model's probabilities in one long table (fold, id, one column per class); None without them."""
    if not pred.by_fold:
        return None
    parts = [pd.DataFrame(p, columns=pred.classes).assign(fold=f, id=pred.ids) for f, p in sorted(pred.by_fold.items())]
    table = pd.concat(parts, ignore_index=True)
    return table[["fold", "id", *pred.classes]]


def fold_arrays(table: pd.DataFrame | None, ids: list[str], classes: list[str]) -> dict[int, np.ndarray]:
    """A ``fold_table`` read back: each fold's probabilities in the order of ``ids``; empty when there is no table
    or a fold lacks one of the ids."""
    if table is None:
        return {}
    out = {}
    for f, part in table.assign(id=table["id"].astype(str)).groupby("fold", sort=True):
        part = part.set_index("id")
        if not part.index.is_unique or not all(i in part.index for i in ids):
            return {}
        out[int(f)] = part.loc[ids, classes].to_numpy(dtype=np.float64)
    return out


def write_test_outputs(run: Run, pred: Prediction, fmt: SubmissionFormat | None) -> Path:
    """``test_predictions.csv`` (probabilities, and each fold model's in ``test_predictions_folds.csv``) and a
    validated ``submission.csv`` in the sample's format."""
    run.write_test_predictions(probability_table(pred), fold_table(pred))
    fmt = fmt or default_format(pred.task, pred.classes, pred.ids)
    labels = pred.task.decode(pred.probs, pred.decisions, pred.classes)
    return run.write_submission(lambda path: write_submission(path, fmt, pred.ids, pred.probs, pred.classes,
                                                              pred.threshold, labels=labels))
