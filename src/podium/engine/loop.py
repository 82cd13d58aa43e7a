"""The loop as plain functions: ``train_one_epoch`` and ``predict_logits`` (the one prediction path for validation,
OOF and test inference), and ``evaluate`` on top of it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch.utils.data import DataLoader

from podium.core.progress import progress_bar, track
from podium.data.pixels.preprocessing import Preprocessing
from podium.engine.tta import check_views
from podium.tasks.metrics import score
from podium.tasks.task import Task

# Called after every optimiser update with (its index among the fold's updates, its mean training loss, its LR).
UpdateHook = Callable[[int, float, float], None]


def train_one_epoch(
    model: torch.nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    accelerator: Accelerator,
    prep: Preprocessing,
    ema: torch.nn.Module | None = None,
    clip_grad: float = 0.0,
    channels_last: bool = True,
    description: str = "train",
    batch_aug: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    on_update: UpdateHook | None = None,
) -> dict[str, float]:
    """One pass over ``loader``; returns the mean loss, images per second, the last learning rate and ``lrs``, the
    learning rate of every optimiser update (the schedule actually used, for the report): the largest of the
    parameter groups' (the head's), with ``backbone_lrs`` the smallest (the backbone's, 0 while it is frozen).

    ``batch_aug`` (MixUp/CutMix) mixes each normalised batch and turns its targets into soft targets. ``on_update``
    is called after every optimiser update (experiment trackers)."""
    model.train()
    total_loss, seen, t0 = 0.0, 0, time.perf_counter()
    update_loss, update_seen = 0.0, 0  # the micro-batches of the current optimiser update
    lrs: list[float] = []
    backbone_lrs: list[float] = []
    with progress_bar(accelerator.is_main_process) as bar:
        task = bar.add_task(description, total=len(loader), loss=0.0, ips=0.0)
        for x, y, _ in loader:
            x = prep.normalize(x, channels_last)
            if batch_aug is not None:
                x, y = batch_aug(x, y)
            with accelerator.accumulate(model):
                loss = loss_fn(model(x), y)
                accelerator.backward(loss)
                batch_loss = loss.item() * len(x)
                update_loss, update_seen = update_loss + batch_loss, update_seen + len(x)
                if accelerator.sync_gradients and clip_grad > 0:
                    accelerator.clip_grad_norm_(model.parameters(), clip_grad)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if accelerator.sync_gradients:
                    group_lrs = [float(g["lr"]) for g in optimizer.param_groups]
                    lrs.append(max(group_lrs))
                    backbone_lrs.append(min(group_lrs))
                    if on_update is not None:  # the update's index in the fold: restored with the schedule
                        on_update(scheduler.last_epoch, update_loss / update_seen, lrs[-1])
                    update_loss, update_seen = 0.0, 0
                    scheduler.step()  # the schedule counts optimiser updates, not micro-batches
                    if ema is not None:  # the update count drives timm's EMA warmup (short runs need it)
                        ema.update(accelerator.unwrap_model(model), step=scheduler.last_epoch)
            total_loss += batch_loss
            seen += len(x)
            ips = seen * accelerator.num_processes / (time.perf_counter() - t0)
            bar.update(task, advance=1, loss=total_loss / seen, ips=ips)
    elapsed = time.perf_counter() - t0
    return {"train_loss": total_loss / max(seen, 1), "images_per_s": seen * accelerator.num_processes / elapsed,
            "lr": max(float(g["lr"]) for g in optimizer.param_groups), "train_s": elapsed, "lrs": lrs,
            "backbone_lrs": backbone_lrs}


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module,
    loader: DataLoader,
    prep: Preprocessing,
    accelerator: Accelerator,
    views: Sequence[str] = ("identity",),
    channels_last: bool = True,
    views_together: bool | None = None,
    scales: Sequence[float] = (1.0,),
    description: str = "predict",
) -> np.ndarray:
    """Logits (N, C) in dataset order, averaged over the TTA ``views``.

    The images of a batch are loaded and normalised once for all views. On a GPU the views go through the model
    together as one larger batch (split into 2, 4, ... forward passes only after an out-of-memory error); on CPU one
    view at a time, because a CPU runs a batch of views x batch images slower per image than the batch alone (its
    activations outgrow the caches; bench/tta_cost: 4 views stacked 0.80 x plain/4, one per pass 1.07). Rows
    come back keyed by their dataset index, which keeps the order right under several processes too.
    ``views_together`` overrides that choice (None: by device). Progress is shown as ``description``.
    """
    fns = check_views(views)
    model.eval()
    if scales != (1.0,):  # multi-scale TTA: the same views at each scale, averaged on logits
        fns = [_scaled(f, s) for s in scales for f in fns]
        views_together = False  # different sizes cannot share one forward pass
    out: np.ndarray | None = None
    # Forward passes per batch: raised on a CUDA out-of-memory error, then kept for the following batches.
    if views_together is None:
        views_together = accelerator.device.type != "cpu"
    passes = 1 if views_together else len(fns)
    for x, _, idx in track(loader, len(loader), description, accelerator.is_main_process):
        x = prep.normalize(x, channels_last)
        while True:
            try:
                logits = _views_logits(model, x, fns, accelerator, passes)
                break
            except torch.cuda.OutOfMemoryError:
                if passes >= len(fns) * len(x):
                    raise
                passes *= 2
                torch.cuda.empty_cache()
        logits, idx = accelerator.gather_for_metrics((logits, idx))
        if out is None:
            out = np.zeros((len(loader.dataset), logits.shape[1]), dtype=np.float32)
        out[idx.cpu().numpy()] = logits.cpu().numpy()
    assert out is not None, "empty loader"
    return out


def _scaled(view: Callable[[torch.Tensor], torch.Tensor], scale: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """``view`` at ``scale`` times the input size (bilinear; the model's global pooling takes any size)."""
    if scale == 1.0:
        return view
    return lambda x: F.interpolate(view(x), scale_factor=scale, mode="bilinear", align_corners=False)


def _views_logits(model: torch.nn.Module, x: torch.Tensor, fns: Sequence[Callable[[torch.Tensor], torch.Tensor]],
                  accelerator: Accelerator, passes: int) -> torch.Tensor:
    """Mean logits over the views of batch ``x``: all views stacked into one forward pass, or ``passes`` chunks of
    the stacked batch when that does not fit in memory."""
    if passes >= len(fns):  # one view (or less) per pass: views may differ in size (multi-scale)
        with accelerator.autocast():
            per_view = [torch.cat([model(c).float() for c in f(x).chunk(max(1, passes // len(fns)))]) for f in fns]
        return torch.stack(per_view).mean(0)
    batch = torch.cat([f(x) for f in fns]) if len(fns) > 1 else fns[0](x)
    with accelerator.autocast():
        logits = torch.cat([model(chunk).float() for chunk in batch.chunk(passes)])
    return logits.view(len(fns), len(x), -1).mean(0)


def evaluate(
    model: torch.nn.Module,
    loader: DataLoader,
    prep: Preprocessing,
    accelerator: Accelerator,
    task: Task,
    targets: np.ndarray,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    views: Sequence[str] = ("identity",),
    threshold: float = 0.5,
    channels_last: bool = True,
    scales: Sequence[float] = (1.0,),
    description: str = "validate",
) -> tuple[dict[str, float], np.ndarray]:
    """Task metrics plus ``val_loss`` on ``loader``, and the probabilities they were computed from."""
    logits = predict_logits(model, loader, prep, accelerator, views, channels_last, scales=scales,
                            description=description)
    probs = task.probabilities(logits)
    metrics = score(task, targets, probs, threshold)
    metrics["val_loss"] = float(loss_fn(torch.from_numpy(logits), torch.from_numpy(targets)).item())
    return metrics, probs
