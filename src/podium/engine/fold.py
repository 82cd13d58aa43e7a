"""``fit_fold``: train one fold, keep its best epoch (EMA weights), and write its out-of-fold predictions.

A fold folder is complete once ``done.json`` exists; until then ``last.pt`` holds the state after the latest epoch,
so an interrupted run resumes at the next epoch with the same batches (the shuffle depends on seed and epoch only).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from timm.utils import ModelEmaV3

from podium.checkpoint import load_checkpoint, save_checkpoint
from podium.config import PodiumConfig
from podium.data.cache import decoded_images
from podium.data.dataset import ImageDataset
from podium.data.ingest import Competition
from podium.data.transforms import create_transform
from podium.engine.accel import make_loader, maybe_compile, num_workers
from podium.engine.finetune import effective_finetune, prepare_epoch
from podium.engine.loop import evaluate, train_one_epoch
from podium.engine.losses import create_loss
from podium.engine.optim import create_optimizer, create_scheduler
from podium.report import Reporter
from podium.io import atomic_path, write_csv, write_json
from podium.models.factory import create_model
from podium.models.preprocessing import resolve_preprocessing


@dataclass(frozen=True)
class FoldResult:
    """A finished fold: its validation rows, their OOF probabilities (with TTA) and its scores."""

    fold: int
    val_idx: np.ndarray
    probs: np.ndarray
    summary: dict


def selection_key(metrics: dict[str, float], primary: str) -> float:
    """Higher is better: the primary metric, or minus the validation loss where the metric is undefined."""
    value = metrics[primary]
    return -metrics["val_loss"] if math.isnan(value) else value


def fit_fold(fold: int, comp: Competition, folds: np.ndarray, cfg: PodiumConfig, run_dir: Path,
             accelerator: Accelerator, reporter: Reporter) -> FoldResult:
    """Train fold ``fold`` (or read it back if it is already done) and return its OOF predictions."""
    fold_dir = run_dir / f"fold{fold}"
    val_idx = np.flatnonzero(folds == fold)
    train_idx = np.flatnonzero(folds != fold)
    if (fold_dir / "done.json").is_file():
        summary = json.loads((fold_dir / "done.json").read_text())
        oof = pd.read_csv(fold_dir / "oof.csv", dtype={"id": str})
        reporter.print(f"fold {fold}: already trained (best epoch {summary['best_epoch']}), skipped")
        return FoldResult(fold, val_idx, oof[list(comp.classes)].to_numpy(), summary)
    fold_dir.mkdir(parents=True, exist_ok=True)
    tc, task, classes = cfg.train, comp.task, list(comp.classes)
    set_seed(tc.seed + fold)

    model = create_model(cfg.model, len(classes))
    prep = resolve_preprocessing(model, cfg.model)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    device = accelerator.device.type
    workers = num_workers(tc.num_workers, device)
    paths, targets = comp.train["path"].to_numpy(), comp.targets
    images = decoded_images(paths, prep.size, cfg.data)  # None when data.cache=false
    train_ds = ImageDataset(paths[train_idx], targets[train_idx], create_transform(prep, cfg.aug, train=True),
                            None if images is None else images.take(train_idx), seed=tc.seed + fold)
    val_ds = ImageDataset(paths[val_idx], targets[val_idx], create_transform(prep),
                          None if images is None else images.take(val_idx))
    train_loader = make_loader(train_ds, tc.batch_size, workers, device, shuffle_seed=tc.seed + fold)
    sampler = train_loader.sampler
    val_loader = make_loader(val_ds, cfg.predict.batch_size or 2 * tc.batch_size, workers, device)
    loss_fn = create_loss(tc.loss, task, tc.label_smoothing, tc.class_weights, targets[train_idx], len(classes))
    ft = effective_finetune(cfg.finetune, cfg.model.pretrained)
    optimizer = create_optimizer(model, tc, ft)
    model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
    scheduler = create_scheduler(optimizer, tc, math.ceil(len(train_loader) / tc.accum_steps),
                                 accelerator.unwrap_model(model), ft)
    ema = ModelEmaV3(accelerator.unwrap_model(model), decay=tc.ema_decay, use_warmup=True) if tc.ema else None
    eval_model = ema.module if ema is not None else accelerator.unwrap_model(model)
    maybe_compile(accelerator.unwrap_model(model), tc)  # after the EMA copy, which stays uncompiled

    start, best, best_epoch, rows = 0, -math.inf, 0, []
    last_path, best_path = fold_dir / "last.pt", fold_dir / "best.pt"
    if last_path.is_file():
        state = torch.load(last_path, map_location="cpu", weights_only=True)
        accelerator.unwrap_model(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        start, best, best_epoch, rows = state["epoch"], state["best"], state["best_epoch"], state["rows"]
        reporter.print(f"fold {fold}: resuming after epoch {start}")

    y_val, bn_hooks = targets[val_idx], []
    for epoch in range(start, tc.epochs):
        sampler.set_epoch(epoch)
        # Head-only warm-up epochs and the BatchNorm mode depend on the epoch alone, so a resumed run matches.
        bn_hooks = prepare_epoch(accelerator.unwrap_model(model), epoch, ft, bn_hooks)
        stats = train_one_epoch(model, train_loader, optimizer, scheduler, loss_fn, accelerator, prep, ema,
                                tc.clip_grad, tc.channels_last, f"fold {fold} epoch {epoch + 1}/{tc.epochs}")
        metrics, _ = evaluate(eval_model, val_loader, prep, accelerator, task, y_val, loss_fn,
                              channels_last=tc.channels_last)
        key = selection_key(metrics, task.primary)
        improved = best_epoch == 0 or key > best  # NaN (a diverged loss) never beats a number
        rows.append({"epoch": epoch + 1, **stats, **metrics, "best": improved})
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        reporter.print(f"fold {fold} epoch {epoch + 1}/{tc.epochs}  train_loss {stats['train_loss']:.4f}  {shown}  "
                       f"{stats['images_per_s']:.0f} img/s{'  *' if improved else ''}")
        if accelerator.is_main_process:
            write_csv(fold_dir / "log.csv", pd.DataFrame(rows))
            if improved:
                best, best_epoch = key, epoch + 1
                save_checkpoint(best_path, eval_model.state_dict(), cfg, classes, task.name, prep, fold=fold,
                                epoch=epoch + 1, metric=task.primary, score=metrics[task.primary], threshold=0.5)
            state = {"model": accelerator.unwrap_model(model).state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "ema": ema.state_dict() if ema is not None else {},
                     "epoch": epoch + 1, "best": best, "best_epoch": best_epoch, "rows": rows}
            with atomic_path(last_path) as tmp:
                torch.save(state, tmp)
        else:
            best, best_epoch = (key, epoch + 1) if improved else (best, best_epoch)
        accelerator.wait_for_everyone()

    # The OOF predictions come from the best epoch's weights with the same TTA as the test predictions, so that
    # thresholds and blend weights fitted on them transfer to the test set.
    eval_model.load_state_dict(load_checkpoint(best_path)["state_dict"])
    tta_metrics, probs = evaluate(eval_model, val_loader, prep, accelerator, task, y_val, loss_fn,
                                  views=cfg.predict.tta, channels_last=tc.channels_last)
    best_row = rows[best_epoch - 1]
    summary = {"fold": fold, "best_epoch": best_epoch, "metric": task.primary, "score": best_row[task.primary],
               "score_tta": tta_metrics[task.primary], "train_rows": int(len(train_idx)), "val_rows": int(len(val_idx)),
               "train_s": float(sum(r["train_s"] for r in rows))}
    if accelerator.is_main_process:
        oof = pd.DataFrame(probs, columns=classes)
        oof.insert(0, "id", comp.train["id"].to_numpy()[val_idx])
        write_csv(fold_dir / "oof.csv", oof)
        write_json(fold_dir / "done.json", summary)
        last_path.unlink(missing_ok=True)
    reporter.print(f"fold {fold}: best epoch {best_epoch}  {task.primary} {summary['score']:.4f}  "
                   f"with TTA {summary['score_tta']:.4f}")
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    return FoldResult(fold, val_idx, probs, summary)
