"""The validation step every entry point runs right after loading a config, before anything is written: registry
names, relations between keys, and trackers whose packages are missing. The help text of ``podium train --help`` is
built here too, as its choices come from the same registries.

``podium.config`` is a leaf (types, ranges, fixed choices); this module knows which keys take registered names, and
imports their registries explicitly, so the import graph shows every dependency.
"""

from __future__ import annotations

import typing
from dataclasses import fields
from typing import Any

from podium.config import PodiumConfig
from podium.config_checks import check_field, describe
from podium.core.errors import PodiumError
from podium.core.registry import Registry
from podium.data.folders.layouts import LAYOUTS
from podium.data.folders.tables import ENCODINGS, SEPARATORS
from podium.data.integrity import CONFLICT_POLICIES
from podium.data.pixels.cache_formats import CACHE_FORMATS
from podium.data.pixels.image_ops import IMAGE_OPS
from podium.data.training.batch_aug import BATCH_AUGS
from podium.data.training.dataset import SAMPLERS
from podium.data.training.transforms import AUGMENTATIONS, RESIZES
from podium.engine.finetune import BN_MODES
from podium.engine.losses import CLASS_WEIGHTS, LOSSES, check_loss_fits
from podium.engine.optim import OPTIMIZERS, SCHEDULES
from podium.engine.trackers import TRACKERS, check_trackers
from podium.engine.tta import VIEWS
from podium.inference.noisy_labels import SUSPECT_ACTIONS
from podium.models.heads import HEADS
from podium.models.weights import WEIGHT_SOURCES
from podium.tasks.metrics import METRICS, check_metric
from podium.tasks.task import TASKS
from podium.tasks.thresholds import BINARY_RULES, THRESHOLD_MODES

# The config keys whose values are registered names, and their registries (a tuple key: every item).
REGISTRY_KEYS: dict[str, Registry[Any]] = {
    "data.layout": LAYOUTS,
    "data.task": TASKS,
    "data.csv_sep": SEPARATORS,
    "data.csv_encoding": ENCODINGS,
    "data.conflicts": CONFLICT_POLICIES,
    "data.preprocess": IMAGE_OPS,
    "data.cache_format": CACHE_FORMATS,
    "data.suspect_action": SUSPECT_ACTIONS,
    "model.pretrained": WEIGHT_SOURCES,
    "model.head": HEADS,
    "model.resize": RESIZES,
    "finetune.bn": BN_MODES,
    "aug.ops": AUGMENTATIONS,
    "aug.batch": BATCH_AUGS,
    "train.optimizer": OPTIMIZERS,
    "train.schedule": SCHEDULES,
    "train.loss": LOSSES,
    "train.sampler": SAMPLERS,
    "train.class_weights": CLASS_WEIGHTS,
    "predict.tta": VIEWS,
    "predict.threshold_mode": THRESHOLD_MODES,
    "predict.binary_threshold": BINARY_RULES,
    "run.trackers": TRACKERS,
    "cv.metric": METRICS,  # or a user's module:function (the field's ``user`` flag)
}


def _fields() -> typing.Iterator[tuple[str, Any, Any]]:
    """(dotted key, section class field, section name) of every config key."""
    for group in fields(PodiumConfig):
        for f in fields(typing.get_type_hints(PodiumConfig)[group.name]):
            yield f"{group.name}.{f.name}", f, group.name


def validate(cfg: PodiumConfig) -> PodiumConfig:
    """``cfg`` when every registered name exists and the keys agree with each other; else a one-line PodiumError
    naming the key (nothing has been written yet: entry points call this right after loading)."""
    for key, f, section in _fields():
        if key in REGISTRY_KEYS:
            check_field(getattr(getattr(cfg, section), f.name), f.metadata, key, REGISTRY_KEYS[key])
    check_relations(cfg)
    return cfg


def check_relations(cfg: PodiumConfig) -> None:
    """Relations between keys of a whole config that would otherwise fail or mislead mid-run."""
    bad = [f for f in cfg.cv.train_folds if not 0 <= f < cfg.cv.folds]
    if bad:
        raise PodiumError(f"Config key cv.train_folds has folds {bad} outside 0..{cfg.cv.folds - 1} "
                          f"(cv.folds={cfg.cv.folds}).")
    if cfg.aug.batch and cfg.train.batch_size % 2:
        raise PodiumError(f"Config key train.batch_size must be even with aug.batch={','.join(cfg.aug.batch)} (images "
                          f"are mixed in pairs), got {cfg.train.batch_size}.")
    if cfg.data.task != "auto" and cfg.train.loss != "auto":  # a loss that cannot fit the named task
        check_loss_fits(cfg.train.loss, TASKS.get(cfg.data.task))
    if cfg.cv.metric != "auto":  # a user's module:function is imported now; a metric must fit a named task
        check_metric(cfg.cv.metric, cfg.data.task)
    if cfg.run.trackers:  # a tracker's package missing here: the pip command now, not at the first fold
        check_trackers(cfg.run)
    if cfg.data.pseudo_images and not cfg.data.pseudo:
        raise PodiumError("Config key data.pseudo_images needs data.pseudo: the run or ensemble whose predictions of "
                          f"{cfg.data.pseudo_images} become the pseudo-labels.")
    ft, epochs = cfg.finetune, cfg.train.epochs
    if WEIGHT_SOURCES.get(cfg.model.pretrained).pretrained and ft.freeze_epochs >= epochs:
        raise PodiumError(f"Config key finetune.freeze_epochs must be < train.epochs ({epochs}) with pretrained "
                          f"weights (model.pretrained={cfg.model.pretrained}), got {ft.freeze_epochs}: the backbone "
                          "would never be fine-tuned. Lower it (0: no head-only warm-up) or raise train.epochs.")


def help_text() -> str:
    """Every option group and key with its default, help text and accepted values, for ``podium train --help``."""
    lines, hints = [], typing.get_type_hints(PodiumConfig)
    for group in fields(PodiumConfig):
        lines.append(f"{group.name}: {(hints[group.name].__doc__ or '').strip()}")
        for f in fields(hints[group.name]):
            key = f"{group.name}.{f.name}"
            default = f.default
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else repr(default)
            lines.append(f"  {key}={shown}  {f.metadata.get('help', '')}"
                         f"{describe(f.metadata, key, REGISTRY_KEYS.get(key))}")
    return "\n".join(lines)
