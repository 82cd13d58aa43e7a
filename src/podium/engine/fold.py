"""``fit_fold``: train one fold, keep its best epoch (EMA weights), and write its out-of-fold predictions.

It reads top to bottom: ``build_fold`` (model, loaders, optimiser, schedule, EMA), ``resume_fold`` (the state after
the latest finished epoch, if any), ``run_epoch`` for each remaining epoch, ``finish_fold`` (OOF with TTA). Every
file goes through the run's owner (``Run``); a fold is finished once ``done.json`` exists.

A resumed fold replays exactly what an uninterrupted one does: shuffles and augmentations are keyed by (seed, epoch,
row), the loaders have their own generators, and ``last.pt`` restores model, EMA, optimiser, schedule, gradient
scaler and the global random generators (dropout, stochastic depth) as they were at the end of the epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from timm.utils import ModelEmaV3

from podium.config import PodiumConfig, TrainConfig
from podium.core.console import Reporter
from podium.core.errors import PodiumError
from podium.data.folders.ingest import Competition
from podium.data.pixels.cache import decoded_images
from podium.data.pixels.image_ops import ops_of
from podium.data.pixels.preprocessing import Preprocessing
from podium.data.training.batch_aug import SoftTargetMixup, create_batch_aug
from podium.data.training.dataset import SAMPLERS, evaluation_dataset, training_dataset
from podium.data.training.transforms import check_train_transform
from podium.engine.accel import eval_batch_size, make_loader, maybe_compile, num_workers
from podium.engine.finetune import effective_finetune, prepare_epoch
from podium.engine.loop import TrainContext, evaluate, train_one_epoch
from podium.engine.losses import LossFn, check_loss, configured_loss, distillation
from podium.engine.memory import parameter_count, peak_mb, reset_peak
from podium.engine.optim import create_optimizer, create_scheduler
from podium.engine.trackers import FoldTrackers, fold_trackers
from podium.engine.tta import PLAIN, check_shape_kept, is_plain, view_names
from podium.models.factory import create_model, resolve_preprocessing
from podium.runs.checkpoint import Checkpoint, ResumeState, rng_state, set_rng_state
from podium.runs.run import Run
from podium.tasks.metrics import get_metric


@dataclass(frozen=True)
class FoldResult:
    """A finished fold: its validation rows, their OOF probabilities with TTA and without (``plain``; None for a
    fold trained before that was kept), and its scores."""

    fold: int
    val_idx: np.ndarray
    probs: np.ndarray
    summary: dict
    plain: np.ndarray | None = None
    oof_timing: dict | None = None  # the OOF passes' images, views and seconds (None: trained in an earlier process)


@dataclass
class FoldParts:
    """Everything one fold trains with, built once per process."""

    fold: int
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: ModelEmaV3 | None
    train_loader: torch.utils.data.DataLoader
    val_loader: torch.utils.data.DataLoader
    loss_fn: LossFn
    prep: Preprocessing
    train_idx: np.ndarray
    val_idx: np.ndarray
    batch_aug: SoftTargetMixup | None = None
    bn_hooks: list = field(default_factory=list)
    cache_s: float = 0.0  # seconds spent making sure every image of the fold is in the decoded-image cache
    cache_note: str = ""  # the cache's size and disk use, for the log

    def eval_model(self, accelerator: Accelerator) -> torch.nn.Module:
        """The weights that are evaluated and saved: the EMA when there is one."""
        return self.ema.module if self.ema is not None else accelerator.unwrap_model(self.model)

    def context(self, accelerator: Accelerator, tc: TrainConfig) -> TrainContext:
        """What ``train_one_epoch`` updates the fold's model with."""
        return TrainContext(self.model, self.optimizer, self.scheduler, self.loss_fn, accelerator, self.prep,
                            self.ema, tc.clip_grad, tc.channels_last)

    def resume_state(self, progress: Progress, accelerator: Accelerator) -> ResumeState:
        """Everything an interrupted fold resumes from after the epoch ``progress`` has reached."""
        return ResumeState(
            progress.epoch, progress.best, progress.best_epoch, progress.rows,
            model=accelerator.unwrap_model(self.model).state_dict(), optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(), ema=self.ema.state_dict() if self.ema is not None else {},
            scaler=accelerator.scaler.state_dict() if accelerator.scaler is not None else {}, rng=rng_state())


@dataclass
class Progress:
    """How far a fold got: epochs finished, the best selection key so far and its epoch, the epoch log rows."""

    epoch: int = 0
    best: float = -math.inf
    best_epoch: int = 0
    rows: list[dict] = field(default_factory=list)


def out_of_patience(progress: Progress, patience: int) -> bool:
    """Whether ``patience`` epochs (0: never) have passed since the fold's best epoch."""
    return patience > 0 and progress.epoch - progress.best_epoch >= patience


def selection_key(metrics: dict[str, float], primary: str) -> float:
    """Higher is better: the primary metric in its direction (``cv.metric``), or minus the validation loss where the
    metric is undefined."""
    value = metrics[primary]
    return -metrics["val_loss"] if math.isnan(value) else get_metric(primary).key(value)


# Called after each epoch of a fold with (fold, that epoch's log row: epoch, losses, validation metrics); it may
# raise to stop the run (a search pruning a trial), or return True to end this fold there as early stopping does
# (``podium auto`` when the run would pass its time budget's hard limit).
EpochHook = Callable[[int, dict], "bool | None"]


def fit_fold(fold: int, comp: Competition, folds: np.ndarray, cfg: PodiumConfig, run: Run,
             accelerator: Accelerator, reporter: Reporter, *, on_epoch: EpochHook | None = None) -> FoldResult:
    """Train fold ``fold`` (or read it back if it is already done) and return its OOF predictions; ``on_epoch`` is
    called after every epoch this call trains."""
    val_idx = np.flatnonzero(folds == fold)
    summary = run.fold_summary(fold)
    if summary is not None:
        reporter.print(f"fold {fold}: already trained (best epoch {summary['best_epoch']}), skipped")
        probs = run.fold_oof(fold)[list(comp.classes)].to_numpy()
        saved = run.fold_oof(fold, plain=True)
        plain = saved[list(comp.classes)].to_numpy() if saved is not None else probs if _plain_views(cfg) else None
        return FoldResult(fold, val_idx, probs, summary, plain)
    reset_peak(accelerator.device.type)
    parts = build_fold(fold, comp, folds, cfg, accelerator)
    if parts.cache_note and fold == (cfg.cv.train_folds or (0,))[0]:  # the same store for every fold: said once
        reporter.print(f"{parts.cache_note}, ready in {parts.cache_s:.1f} s")
    progress = resume_fold(parts, run, accelerator, reporter)
    # run.trackers: one tracker run per fold, its step the optimiser update count (restored with the schedule)
    with fold_trackers(cfg, run, fold, parts.scheduler.last_epoch, accelerator, reporter) as trackers:
        for epoch in range(progress.epoch, cfg.train.epochs):
            if out_of_patience(progress, cfg.train.patience):  # checked first, so a resumed fold stops the same way
                reporter.print(f"fold {fold}: no gain in {comp.task.primary} for {cfg.train.patience} epoch(s); "
                               f"stopped after epoch {progress.epoch} of {cfg.train.epochs} (train.patience), best "
                               f"epoch {progress.best_epoch} kept")
                break
            run_epoch(parts, epoch, progress, comp, cfg, run, accelerator, reporter, trackers)
            if on_epoch is not None and on_epoch(fold, dict(progress.rows[-1])) and progress.epoch < cfg.train.epochs:
                reporter.print(f"fold {fold}: stopped after epoch {progress.epoch} of {cfg.train.epochs} by the time "
                               f"budget, best epoch {progress.best_epoch} kept")
                break
        result = finish_fold(parts, progress, comp, cfg, run, accelerator, reporter)
        trackers.fold(result.summary)
    return result


def trains_in(comp: Competition, folds: np.ndarray, fold: int) -> np.ndarray:
    """Which rows train fold ``fold``'s model: every row of the other folds and the train-only rows (fold -1), except
    pseudo rows shared out to another fold (``data.pseudo_share=fold``: their ``part`` names the fold)."""
    rows = folds != fold
    if "part" in comp.train.columns:
        part = comp.train["part"].to_numpy()
        rows &= (part < 0) | (part == fold)
    if comp.train_weights is not None:  # data.suspects' drop: such rows still validate their own fold
        rows &= comp.train_weights > 0
    return rows


def check_fold_recipe(comp: Competition, cfg: PodiumConfig, prep: Preprocessing) -> None:
    """What every fold will build, tried before any folder exists: the loss on the task's targets, the sampler, the
    TTA views and the training augmentations at the model's input (``prep``, resolved before the model exists)."""
    check_loss(cfg.train, comp.task, comp.targets, len(comp.classes))
    SAMPLERS.get(cfg.train.sampler)(comp.task, comp.targets, len(comp.classes))  # e.g. balanced on multilabel
    check_shape_kept(cfg.predict.tta, prep.hw)  # the views of a batch share one forward pass
    check_train_transform(prep, cfg.aug)


def build_fold(fold: int, comp: Competition, folds: np.ndarray, cfg: PodiumConfig,
               accelerator: Accelerator) -> FoldParts:
    """Model, data loaders, loss, optimiser, schedule and EMA for ``fold``, prepared by Accelerate."""
    tc, classes = cfg.train, list(comp.classes)
    set_seed(tc.seed + fold)  # the new head's initialisation, then the state that epoch 0 starts from
    val_idx, train_idx = np.flatnonzero(folds == fold), np.flatnonzero(trains_in(comp, folds, fold))
    model = create_model(cfg.model, comp.task.outputs(len(classes)))  # the task (as coded by its loss) says how many
    prep = resolve_preprocessing(model, cfg.model, cfg.data)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loaders = fold_loaders(comp, cfg, prep, fold, (train_idx, val_idx), accelerator.device.type)
    ft = effective_finetune(cfg.finetune, cfg.model.pretrained)
    optimizer = create_optimizer(model, tc, ft)
    model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, loaders.train, loaders.val)
    scheduler = create_scheduler(optimizer, tc, math.ceil(len(train_loader) / tc.accum_steps),
                                 accelerator.unwrap_model(model), ft)
    ema = ModelEmaV3(accelerator.unwrap_model(model), decay=tc.ema_decay, use_warmup=True) if tc.ema else None
    maybe_compile(accelerator.unwrap_model(model), tc)  # after the EMA copy, which stays uncompiled
    return FoldParts(fold, model, optimizer, scheduler, ema, train_loader, val_loader,
                     fold_loss(comp, tc, comp.targets[train_idx]), prep, train_idx, val_idx,
                     create_batch_aug(cfg.aug, comp.task, len(classes)), cache_s=loaders.cache_s,
                     cache_note=loaders.cache_note)


@dataclass(frozen=True)
class FoldLoaders:
    """A fold's training and validation loaders (not yet prepared by Accelerate), the seconds spent making sure every
    image is in the decoded-image cache and the cache's description (empty with data.cache=false)."""

    train: torch.utils.data.DataLoader
    val: torch.utils.data.DataLoader
    cache_s: float
    cache_note: str


def fold_loaders(comp: Competition, cfg: PodiumConfig, prep: Preprocessing, fold: int,
                 rows: tuple[np.ndarray, np.ndarray], device: str) -> FoldLoaders:
    """Loaders of the fold's training and validation ``rows`` (indices), over the decoded-image cache when it is on:
    training rows learn from ``train_targets`` where they exist (soft, pseudo, teacher), validation scores the
    labels."""
    tc, (train_idx, val_idx) = cfg.train, rows
    workers = num_workers(tc.num_workers, device)
    paths, targets = comp.train["path"].to_numpy(), comp.targets
    t0 = time.perf_counter()
    images = decoded_images(paths, prep.hw, cfg.data, ops_of(prep))  # None when data.cache=false
    cache_s = time.perf_counter() - t0
    learn = comp.train_targets if comp.train_targets is not None else targets  # soft, pseudo, teacher targets
    train_ds = training_dataset(paths[train_idx], learn[train_idx], prep, cfg.aug, tc.seed + fold,
                                None if images is None else images.take(train_idx))
    val_ds = evaluation_dataset(paths[val_idx], prep, targets[val_idx],
                                images=None if images is None else images.take(val_idx))
    weights = SAMPLERS.get(tc.sampler)(comp.task, targets[train_idx], len(comp.classes))
    if comp.train_weights is not None and not np.all(comp.train_weights[train_idx] == 1):  # data.suspects' weight
        weights = (1.0 if weights is None else weights) * comp.train_weights[train_idx]
    train_loader = make_loader(train_ds, tc.batch_size, workers, device, shuffle_seed=tc.seed + fold, weights=weights)
    val_loader = make_loader(val_ds, eval_batch_size(cfg), workers, device)
    return FoldLoaders(train_loader, val_loader, cache_s, "" if images is None else images.describe())


def fold_loss(comp: Competition, tc: TrainConfig, targets: np.ndarray) -> LossFn:
    """``train.loss`` weighted on the fold's training ``targets``; with ``train.teacher`` its distillation (targets
    are then [truth, teacher] rows, podium.inference.teachers)."""
    n = len(comp.classes)
    loss_fn = configured_loss(tc, comp.task, targets, n)
    if not tc.teacher:
        return loss_fn
    return distillation(loss_fn, configured_loss(tc, comp.task, targets, n, smoothing=0.0), n, tc.distill_alpha,
                        tc.distill_temperature)


def resume_fold(parts: FoldParts, run: Run, accelerator: Accelerator, reporter: Reporter) -> Progress:
    """Load the fold's state after its latest finished epoch; a fresh Progress when there is none (or it is
    damaged: the fold then restarts from its first epoch, which an uninterrupted run would have done too)."""
    try:
        state = run.load_state(parts.fold)
    except PodiumError as e:
        reporter.warn(f"{e} Fold {parts.fold} restarts from its first epoch.")
        return Progress()
    if state is None:
        return Progress()
    accelerator.unwrap_model(parts.model).load_state_dict(state.model)
    parts.optimizer.load_state_dict(state.optimizer)
    parts.scheduler.load_state_dict(state.scheduler)
    if parts.ema is not None:
        parts.ema.load_state_dict(state.ema)
    if accelerator.scaler is not None and state.scaler:
        accelerator.scaler.load_state_dict(state.scaler)
    set_rng_state(state.rng)
    reporter.print(f"fold {parts.fold}: resuming after epoch {state.epoch}")
    return Progress(state.epoch, state.best, state.best_epoch, list(state.rows))


def run_epoch(parts: FoldParts, epoch: int, progress: Progress, comp: Competition, cfg: PodiumConfig, run: Run,
              accelerator: Accelerator, reporter: Reporter, trackers: FoldTrackers | None = None) -> None:
    """Train and validate one epoch; log it (and to ``trackers``), keep the best weights and save the state to
    resume from."""
    tc, task, fold = cfg.train, comp.task, parts.fold
    t0 = time.perf_counter()
    stats = train_epoch(parts, epoch, cfg, run, accelerator, trackers)
    eval_model = parts.eval_model(accelerator)
    metrics, _ = evaluate(eval_model, parts.val_loader, parts.prep, accelerator, task, comp.targets[parts.val_idx],
                          parts.loss_fn, channels_last=tc.channels_last, description=f"fold {fold} validate")
    key = selection_key(metrics, task.primary)
    improved = progress.best_epoch == 0 or key > progress.best  # NaN (a diverged loss) never beats a number
    progress.rows.append({"epoch": epoch + 1, **stats, **metrics, "best": improved,
                          "wall_s": time.perf_counter() - t0})  # training and validation
    progress.epoch = epoch + 1
    shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    reporter.print(f"fold {fold} epoch {epoch + 1}/{tc.epochs}  train_loss {stats['train_loss']:.4f}  {shown}  "
                   f"{stats['images_per_s']:.0f} img/s{'  *' if improved else ''}")
    run.write_fold_log(fold, progress.rows)
    if trackers is not None:
        trackers.epoch(progress.rows[-1])
    if improved:
        progress.best, progress.best_epoch = key, epoch + 1
        run.save_best(fold, Checkpoint(eval_model.state_dict(), cfg, comp.classes, task.name, parts.prep, fold,
                                       epoch + 1, task.primary, metrics[task.primary]))
    run.save_state(fold, parts.resume_state(progress, accelerator))
    accelerator.wait_for_everyone()


def train_epoch(parts: FoldParts, epoch: int, cfg: PodiumConfig, run: Run, accelerator: Accelerator,
                trackers: FoldTrackers | None = None) -> dict[str, float]:
    """Train epoch ``epoch`` of the fold (its optimiser updates to ``trackers``); the learning rate of every update
    goes to the fold's lr.csv. Returns the epoch's training stats."""
    tc = cfg.train
    # The prepared loader restarts its own epoch counter at 0 in a new process: it must be told the epoch, or a
    # resumed epoch would draw epoch 0's shuffle and augmentation keys.
    parts.train_loader.set_epoch(epoch)
    # Head-only warm-up epochs and the BatchNorm mode depend on the epoch alone, so a resumed run matches.
    parts.bn_hooks = prepare_epoch(accelerator.unwrap_model(parts.model), epoch,
                                   effective_finetune(cfg.finetune, cfg.model.pretrained), parts.bn_hooks)
    stats = train_one_epoch(parts.context(accelerator, tc), parts.train_loader,
                            f"fold {parts.fold} epoch {epoch + 1}/{tc.epochs}",
                            # the last aug.batch_off_epochs epochs train on clean images and labels
                            parts.batch_aug if epoch < tc.epochs - cfg.aug.batch_off_epochs else None,
                            on_update=None if trackers is None else trackers.update)
    run.write_lr(parts.fold, epoch + 1, stats.pop("lrs"), stats.pop("backbone_lrs"))  # the schedule used, per update
    return stats


def finish_fold(parts: FoldParts, progress: Progress, comp: Competition, cfg: PodiumConfig, run: Run,
                accelerator: Accelerator, reporter: Reporter) -> FoldResult:
    """OOF probabilities of the best epoch's weights, with the same TTA as the test predictions (so that thresholds
    and blend weights fitted on them transfer to the test set); the fold's summary; the fold marked done."""
    task, fold, eval_model = comp.task, parts.fold, parts.eval_model(accelerator)
    eval_model.load_state_dict(run.load_best(fold).state_dict)
    t0 = time.perf_counter()
    tta_metrics, probs = evaluate(eval_model, parts.val_loader, parts.prep, accelerator, task,
                                  comp.targets[parts.val_idx], parts.loss_fn, views=cfg.predict.tta,
                                  channels_last=cfg.train.channels_last, scales=cfg.predict.scales,
                                  description=f"fold {fold} OOF")
    oof_s, t0 = time.perf_counter() - t0, time.perf_counter()
    # The same weights without TTA, so the CV score without TTA is pooled over the OOF rows like the CV score
    # (a mean of per-fold scores would differ from it for AUC or QWK even with no TTA at all).
    plain = probs if _plain_views(cfg) else evaluate(
        eval_model, parts.val_loader, parts.prep, accelerator, task, comp.targets[parts.val_idx], parts.loss_fn,
        views=PLAIN, channels_last=cfg.train.channels_last, description=f"fold {fold} OOF without TTA")[1]
    plain_s = 0.0 if plain is probs else time.perf_counter() - t0
    best_row = progress.rows[progress.best_epoch - 1]
    summary = {"fold": fold, "best_epoch": progress.best_epoch, "metric": task.primary,
               "score": best_row[task.primary], "score_tta": tta_metrics[task.primary],
               "train_rows": int(len(parts.train_idx)), "val_rows": int(len(parts.val_idx)),
               "train_s": float(sum(r["train_s"] for r in progress.rows)), "img_size": parts.prep.size_label,
               "epoch_s": float(np.mean([r["train_s"] for r in progress.rows])), "cache_s": parts.cache_s,
               "epochs_wall_s": [float(r.get("wall_s", r["train_s"])) for r in progress.rows],
               "peak_mem_mb": peak_mb(accelerator.device.type), "params": parameter_count(eval_model),
               "epochs": progress.epoch, "stopped_early": progress.epoch < cfg.train.epochs}
    run.finish_fold(fold, _oof_table(comp, parts.val_idx, probs), summary,
                    None if plain is probs else _oof_table(comp, parts.val_idx, plain))
    reporter.print(f"fold {fold}: best epoch {progress.best_epoch}  {task.primary} {summary['score']:.4f}  "
                   f"with TTA {summary['score_tta']:.4f}")
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    timing = {"images": int(len(parts.val_idx)), "views": len(view_names(cfg.predict.tta)) * len(cfg.predict.scales),
              "s": oof_s, "plain_s": plain_s}  # the views' throughput, for inference forecasts
    return FoldResult(fold, parts.val_idx, probs, summary, plain, timing)


def _oof_table(comp: Competition, val_idx: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """A fold's OOF probabilities keyed by id (id, one column per class)."""
    table = pd.DataFrame(probs, columns=list(comp.classes))
    table.insert(0, "id", comp.train["id"].to_numpy()[val_idx])
    return table


def _plain_views(cfg: PodiumConfig) -> bool:
    """Whether prediction uses no TTA (the identity view at scale 1), so OOF probabilities are already plain."""
    return is_plain(cfg.predict.tta, cfg.predict.scales)
