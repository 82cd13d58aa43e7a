"""Step timing: seconds per training and per evaluation image of a model at an input size on this machine, measured
with a few real steps of the loop's own verbs (``train_step``, ``predict_logits``) on real images of the data.

The images are decoded and augmented before the clock starts, as a run reads them from the decoded-image cache; the
decode time per image is measured on its own (a run pays it once per input size, when it fills the cache).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from podium.config import PodiumConfig
from podium.data.training.dataset import evaluation_dataset, training_dataset
from podium.engine.accel import eval_batch_size, make_loader, training_accelerator
from podium.engine.finetune import effective_finetune
from podium.engine.loop import EpochTally, TrainContext, predict_logits, train_step
from podium.engine.losses import configured_loss
from podium.engine.optim import create_optimizer, create_scheduler
from podium.engine.probe import resolve_auto_batch
from podium.models.factory import create_model, resolve_preprocessing
from podium.tasks.task import Task


@dataclass(frozen=True)
class StepTiming:
    """What a few real steps cost: seconds per training image (forward, backward, update), per evaluation image and
    view, per decoded image, and to build a fold's model, optimiser and schedule (``setup_s``)."""

    train_s: float
    eval_s: float
    decode_s: float
    setup_s: float

    def scaled(self, factor: float) -> StepTiming:
        """Every cost times ``factor``: a timing taken when the machine ran at another speed."""
        return StepTiming(self.train_s * factor, self.eval_s * factor, self.decode_s * factor, self.setup_s * factor)


class Preloaded:
    """Batches already in memory, iterated like the loader they came from (so the clock sees only the model)."""

    def __init__(self, batches: list, dataset: Sequence) -> None:
        self.batches, self.dataset = batches, dataset

    def __iter__(self) -> Iterator:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def time_steps(cfg: PodiumConfig, paths: Sequence[str], targets: np.ndarray, task: Task, num_classes: int,
               steps: int = 2) -> StepTiming:
    """Time ``steps`` training updates (after one untimed warm-up update) and the evaluation of those images by
    ``cfg.model`` at its input size, on ``paths`` (repeated when there are too few)."""
    cfg, _ = resolve_auto_batch(cfg, num_classes)  # train.batch_size=auto: the batch the run will train with
    tc = cfg.train
    accelerator = training_accelerator(cfg)
    t0 = time.perf_counter()
    model = create_model(cfg.model, task.outputs(num_classes))
    prep = resolve_preprocessing(model, cfg.model, cfg.data)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = create_optimizer(model, tc, effective_finetune(cfg.finetune, cfg.model.pretrained))
    model, optimizer = accelerator.prepare(model, optimizer)
    scheduler = create_scheduler(optimizer, tc, steps + 1)
    setup_s = time.perf_counter() - t0
    rows = np.resize(np.arange(len(paths)), tc.batch_size * (steps + 1))
    chosen = [paths[i] for i in rows]
    t0 = time.perf_counter()
    train_ds = training_dataset(chosen, targets[rows], prep, cfg.aug, tc.seed)
    batches = [b for b in make_loader(train_ds, tc.batch_size, 0, accelerator.device.type, shuffle_seed=tc.seed)]
    decode_s = (time.perf_counter() - t0) / len(chosen)
    loss_fn = configured_loss(tc, task, targets[rows], num_classes)
    ctx = TrainContext(model, optimizer, scheduler, loss_fn, accelerator, prep, None, tc.clip_grad, tc.channels_last)
    train_s = _timed_updates(ctx, batches) / (tc.batch_size * steps)
    eval_ds = evaluation_dataset(chosen, prep)
    eval_batches = list(make_loader(eval_ds, eval_batch_size(cfg), 0, accelerator.device.type))
    if accelerator.device.type == "cuda":  # kernels are chosen per shape on a GPU: not on the clock
        predict_logits(model, Preloaded(eval_batches[:1], eval_ds), prep, accelerator,
                       channels_last=tc.channels_last, description="probe warm-up")
    t0 = time.perf_counter()
    predict_logits(model, Preloaded(eval_batches, eval_ds), prep, accelerator, channels_last=tc.channels_last,
                   description="probe evaluation")
    _sync(accelerator.device.type)
    eval_s = (time.perf_counter() - t0) / len(eval_ds)
    accelerator.free_memory()
    return StepTiming(train_s, eval_s, decode_s, setup_s)


def _timed_updates(ctx: TrainContext, batches: list) -> float:
    """Seconds of the updates after the first (which warms up kernels and allocations) on ``batches``."""
    ctx.model.train()
    tally = EpochTally()
    device = ctx.accelerator.device.type
    t0 = 0.0
    for n, (x, y, _) in enumerate(batches):
        if n == 1:
            _sync(device)
            t0 = time.perf_counter()
        train_step(ctx, ctx.prep.normalize(x.to(ctx.accelerator.device), ctx.channels_last),
                   y.to(ctx.accelerator.device), tally)
    _sync(device)
    return time.perf_counter() - t0


def _sync(device: str) -> None:
    """Wait for queued GPU work, so the clock measures it."""
    if device == "cuda":
        torch.cuda.synchronize()
