"""Knowledge from earlier runs, joined by image id: soft labels from a run's out-of-fold predictions
(``data.soft_labels``) and a teacher's probabilities for distillation (``train.teacher``); pseudo-labels are
``podium.inference.pseudo``. A source is any finished run or ensemble folder of the same data and classes.

Every join is by id, never by position (a public re-implementation of the Plant Pathology 2020 winners' soft labels
joined by position inside re-indexed folds and trained on misaligned targets). Out-of-fold sources must have been
trained on the same folds: a row's OOF probability then comes from a model that never saw that row, and the new
run's validation rows keep their hard labels. What remains is second-order, and said plainly in docs/RECIPES.md: the
soft target of a training row was predicted by a source model that trained on the new run's validation fold.

The result is ``Competition.train_targets``: one float row per training row, what the loss sees (the validation rows'
targets, metrics and the sampler keep ``Competition.targets``). With a teacher the row is ``[truth, teacher]`` (2C
values) and ``engine.losses.distillation`` splits it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from podium.config import PodiumConfig
from podium.data.folders.extra import is_main
from podium.data.folders.ingest import Competition
from podium.inference.noisy_labels import with_suspects
from podium.inference.pseudo import check_pseudo_folds, teacher_on_pseudo
from podium.inference.sources import oof_probabilities, open_source, provenance


def with_soft_labels(comp: Competition, folds: np.ndarray, cfg: PodiumConfig) -> tuple[Competition, dict]:
    """``comp`` whose own training rows learn (1 - data.soft_alpha) x truth + data.soft_alpha x the source's OOF
    probabilities, joined by id; other rows keep their targets."""
    if not cfg.data.soft_labels:
        return comp, {}
    src = open_source(cfg.data.soft_labels, "data.soft_labels", comp)
    oof = oof_probabilities(src, comp, folds, "data.soft_labels")
    base = comp.train_targets if comp.train_targets is not None else comp.task.onehot(comp.targets, len(comp.classes))
    main, alpha = is_main(comp), cfg.data.soft_alpha
    mixed = base.astype(np.float64)
    mixed[main] = (1 - alpha) * mixed[main] + alpha * oof[main]
    return dataclasses.replace(comp, train_targets=mixed.astype(np.float32)), {**provenance(src), "alpha": alpha}


def with_teacher(comp: Competition, folds: np.ndarray, cfg: PodiumConfig) -> tuple[Competition, dict]:
    """``comp`` whose training rows carry ``[truth, teacher]``: the teacher's OOF probabilities (same folds) on the
    competition's rows, its predictions of the pseudo rows' images (its fold-k model's for the rows of fold k),
    softened by ``train.distill_temperature``; rows the
    teacher never predicted (data.extra) learn from their truth alone (the teacher part repeats it)."""
    tc = cfg.train
    if not tc.teacher:
        return comp, {}
    src = open_source(tc.teacher, "train.teacher", comp)
    teacher = oof_probabilities(src, comp, folds, "train.teacher")
    truth = comp.train_targets if comp.train_targets is not None else comp.task.onehot(comp.targets, len(comp.classes))
    truth = truth.astype(np.float64)
    teacher_on_pseudo(src, comp, teacher, cfg)
    gaps = np.isnan(teacher).any(axis=1)
    teacher[gaps] = truth[gaps]
    task = comp.task
    soft = task.from_logits(task.logits(np.clip(teacher, 1e-6, 1 - 1e-6)) / tc.distill_temperature)
    packed = np.concatenate([truth, soft], axis=1).astype(np.float32)
    return dataclasses.replace(comp, train_targets=packed), {
        **provenance(src), "alpha": tc.distill_alpha, "temperature": tc.distill_temperature}


def with_targets(comp: Competition, folds: np.ndarray, cfg: PodiumConfig) -> tuple[Competition, dict[str, Any]]:
    """Actions on suspect labels, soft labels, then the teacher's targets (once the folds are known: each source is
    checked against them), and what each came from (for run.json)."""
    check_pseudo_folds(comp, folds, cfg)
    comp, suspects = with_suspects(comp, folds, cfg)  # first: soft labels and a teacher mix with the fixed labels
    comp, soft = with_soft_labels(comp, folds, cfg)
    comp, teacher = with_teacher(comp, folds, cfg)
    return comp, {k: v for k, v in {"suspects": suspects, "soft_labels": soft, "teacher": teacher}.items() if v}
