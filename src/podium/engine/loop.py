"""The loop as plain functions: ``train_one_epoch`` (on a ``TrainContext``, what every update of a fold uses; one
``train_step`` per micro-batch with Accelerate's own verbs) and ``predict_logits`` (the one prediction path for
validation, OOF and test inference), and ``evaluate`` on top of it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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
# MixUp/CutMix on a normalised batch: (images, targets) -> (mixed images, soft targets).
BatchAug = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class TrainContext:
    """What every optimiser update of a fold uses: the prepared model, optimiser, schedule and loss, the Accelerator,
    the preprocessing that normalises each batch, the EMA (None: none), the gradient-norm clip (0: none) and the
    memory format."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    accelerator: Accelerator
    prep: Preprocessing
    ema: torch.nn.Module | None = None
    clip_grad: float = 0.0
    channels_last: bool = True


@dataclass
class EpochTally:
    """An epoch's running totals: its summed loss and images, the same for the optimiser update under way (its
    micro-batches), and the learning rates of every update (the head's largest, the backbone's smallest)."""

    loss: float = 0.0
    seen: int = 0
    update_loss: float = 0.0
    update_seen: int = 0
    lrs: list[float] = field(default_factory=list)
    backbone_lrs: list[float] = field(default_factory=list)


def train_one_epoch(ctx: TrainContext, loader: DataLoader, description: str = "train",
                    batch_aug: BatchAug | None = None, on_update: UpdateHook | None = None) -> dict[str, float]:
    """One pass over ``loader``; returns the mean loss, images per second, the last learning rate and ``lrs``, the
    learning rate of every optimiser update (the schedule actually used, for the report): the largest of the
    parameter groups' (the head's), with ``backbone_lrs`` the smallest (the backbone's, 0 while it is frozen).

    ``batch_aug`` (MixUp/CutMix) mixes each normalised batch and turns its targets into soft targets. ``on_update``
    is called after every optimiser update (experiment trackers)."""
    ctx.model.train()
    tally, t0, processes = EpochTally(), time.perf_counter(), ctx.accelerator.num_processes
    with progress_bar(ctx.accelerator.is_main_process) as bar:
        task = bar.add_task(description, total=len(loader), loss=0.0, ips=0.0)
        for x, y, _ in loader:
            x = ctx.prep.normalize(x, ctx.channels_last)
            if batch_aug is not None:
                x, y = batch_aug(x, y)
            train_step(ctx, x, y, tally, on_update)
            bar.update(task, advance=1, loss=tally.loss / tally.seen,
                       ips=tally.seen * processes / (time.perf_counter() - t0))
    elapsed = time.perf_counter() - t0
    return {"train_loss": tally.loss / max(tally.seen, 1), "images_per_s": tally.seen * processes / elapsed,
            "lr": max(float(g["lr"]) for g in ctx.optimizer.param_groups), "train_s": elapsed, "lrs": tally.lrs,
            "backbone_lrs": tally.backbone_lrs}


def train_step(ctx: TrainContext, x: torch.Tensor, y: torch.Tensor, tally: EpochTally,
               on_update: UpdateHook | None = None) -> None:
    """One micro-batch: forward and backward under Accelerate's gradient accumulation, and the optimiser update
    once the gradients are synchronised (the last micro-batch of ``train.accum_steps``)."""
    accelerator = ctx.accelerator
    with accelerator.accumulate(ctx.model):
        loss = ctx.loss_fn(ctx.model(x), y)
        accelerator.backward(loss)
        batch_loss = loss.item() * len(x)
        tally.update_loss, tally.update_seen = tally.update_loss + batch_loss, tally.update_seen + len(x)
        if accelerator.sync_gradients and ctx.clip_grad > 0:
            accelerator.clip_grad_norm_(ctx.model.parameters(), ctx.clip_grad)
        ctx.optimizer.step()
        ctx.optimizer.zero_grad(set_to_none=True)
        if accelerator.sync_gradients:
            finish_update(ctx, tally, on_update)
    tally.loss, tally.seen = tally.loss + batch_loss, tally.seen + len(x)


def finish_update(ctx: TrainContext, tally: EpochTally, on_update: UpdateHook | None = None) -> None:
    """After an optimiser update: its learning rates kept, ``on_update`` told, the schedule and the EMA stepped."""
    group_lrs = [float(g["lr"]) for g in ctx.optimizer.param_groups]
    tally.lrs.append(max(group_lrs))
    tally.backbone_lrs.append(min(group_lrs))
    if on_update is not None:  # the update's index in the fold: restored with the schedule
        on_update(ctx.scheduler.last_epoch, tally.update_loss / tally.update_seen, tally.lrs[-1])
    tally.update_loss, tally.update_seen = 0.0, 0
    ctx.scheduler.step()  # the schedule counts optimiser updates, not micro-batches
    if ctx.ema is not None:  # the update count drives timm's EMA warmup (short runs need it)
        ctx.ema.update(ctx.accelerator.unwrap_model(ctx.model), step=ctx.scheduler.last_epoch)


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
    stamps: list[float] | None = None,
) -> np.ndarray:
    """Logits (N, C) in dataset order, averaged over the TTA ``views``; ``stamps``: each batch's end time appended.

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
    passes = 1 if (accelerator.device.type != "cpu" if views_together is None else views_together) else len(fns)
    for x, _, idx in track(loader, len(loader), description, accelerator.is_main_process):
        logits, passes = _fitting_logits(model, prep.normalize(x, channels_last), fns, accelerator, passes)
        logits, idx = accelerator.gather_for_metrics((logits, idx))
        if out is None:
            out = np.zeros((len(loader.dataset), logits.shape[1]), dtype=np.float32)
        out[idx.cpu().numpy()] = logits.cpu().numpy()
        if stamps is not None:  # the first batch's warm-up apart from the steady rate (inference forecasts)
            stamps.append(time.perf_counter())
    assert out is not None, "empty loader"
    return out


def _fitting_logits(model: torch.nn.Module, x: torch.Tensor, fns: Sequence[Callable[[torch.Tensor], torch.Tensor]],
                    accelerator: Accelerator, passes: int) -> tuple[torch.Tensor, int]:
    """``_views_logits`` of batch ``x`` in ``passes`` forward passes, doubled after each CUDA out-of-memory error up
    to one image and view per pass; returns the logits and the passes that fitted."""
    while True:
        try:
            return _views_logits(model, x, fns, accelerator, passes), passes
        except torch.cuda.OutOfMemoryError:
            if passes >= len(fns) * len(x):
                raise
            passes *= 2
            torch.cuda.empty_cache()


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
