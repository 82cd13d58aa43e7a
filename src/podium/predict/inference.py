"""Ensembles of checkpoints on a list of images: every fold's model (each with its own preprocessing from its
checkpoint) predicts with TTA through ``predict_logits``, and the folds' probabilities are averaged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator

from podium.checkpoint import load_checkpoint, model_from_checkpoint
from podium.data.cache import decoded_images
from podium.data.dataset import ImageDataset
from podium.data.transforms import create_transform
from podium.engine.accel import make_loader, num_workers
from podium.engine.loop import predict_logits
from podium.errors import PodiumError
from podium.io import write_csv
from podium.submission import SubmissionFormat, default_format, write_submission
from podium.tasks import Task, decode_multilabel, get_task


@dataclass(frozen=True)
class Prediction:
    """Averaged probabilities for ``ids`` with what is needed to decode them."""

    ids: list[str]
    probs: np.ndarray
    task: Task
    classes: list[str]
    threshold: float


def fold_checkpoints(run_dir: Path) -> list[Path]:
    """The best checkpoint of every finished fold of a run."""
    paths = sorted(Path(run_dir).glob("fold*/best.pt"), key=lambda p: int(p.parent.name[4:]))
    if not paths:
        raise PodiumError(f"{run_dir} has no trained fold (fold*/best.pt); train it first.")
    return paths


def predict_checkpoints(checkpoints: list[Path], ids: list[str], paths: list[str], accelerator: Accelerator,
                        views: tuple[str, ...] | None = None, batch_size: int = 0, workers: int = -1) -> Prediction:
    """Average the class probabilities of ``checkpoints`` on the images at ``paths``, each with TTA ``views``
    (default: the views the checkpoint was trained to use)."""
    total: np.ndarray | None = None
    first: dict | None = None
    device = accelerator.device.type
    for path in checkpoints:
        ckpt = load_checkpoint(path)
        if first is None:
            first = ckpt
        elif (ckpt["classes"], ckpt["task"]) != (first["classes"], first["task"]):
            raise PodiumError(f"{path} predicts other classes than {checkpoints[0]}; they cannot be averaged.")
        model, prep, cfg = model_from_checkpoint(ckpt)
        model = model.to(accelerator.device)
        if cfg.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        dataset = ImageDataset(paths, None, create_transform(prep), decoded_images(paths, prep.size, cfg.data))
        bs = batch_size or cfg.predict.batch_size or 2 * cfg.train.batch_size
        loader = accelerator.prepare_data_loader(make_loader(dataset, bs, num_workers(workers, device), device))
        logits = predict_logits(model, loader, prep, accelerator, views or cfg.predict.tta, cfg.train.channels_last)
        probs = get_task(ckpt["task"]).probabilities(logits)
        total = probs if total is None else total + probs
    assert first is not None and total is not None
    return Prediction(list(ids), total / len(checkpoints), get_task(first["task"]), list(first["classes"]),
                      float(first.get("threshold", 0.5)))


def probability_table(pred: Prediction, id_col: str = "id") -> pd.DataFrame:
    """ids, decoded label(s) and one probability column per class."""
    if pred.task.multilabel:
        rows = decode_multilabel(pred.probs, pred.threshold)
        labels = [" ".join(c for c, on in zip(pred.classes, row) if on) for row in rows]
    else:
        labels = [pred.classes[i] for i in pred.probs.argmax(axis=1)]
    df = pd.DataFrame(pred.probs, columns=pred.classes)
    df.insert(0, "labels" if pred.task.multilabel else "label", labels)
    df.insert(0, id_col, pred.ids)
    return df


def write_test_outputs(run_dir: Path, pred: Prediction, fmt: SubmissionFormat | None) -> Path:
    """``test_predictions.csv`` (probabilities) and a validated ``submission.csv`` in the sample's format."""
    write_csv(run_dir / "test_predictions.csv", probability_table(pred))
    fmt = fmt or default_format(pred.task, pred.classes, pred.ids)
    out = run_dir / "submission.csv"
    write_submission(out, fmt, pred.ids, pred.probs, pred.classes, pred.threshold)
    return out
