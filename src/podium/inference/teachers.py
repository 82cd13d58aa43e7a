"""Knowledge from earlier runs, joined by image id: soft labels from a run's out-of-fold predictions
(``data.soft_labels``), pseudo-labels from its test predictions (``data.pseudo``), and a teacher's probabilities for
distillation (``train.teacher``). A source is any finished run or ensemble folder of the same data and classes.

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
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from podium.config import PodiumConfig
from podium.core.errors import PodiumError, list_some
from podium.data.extra import is_main
from podium.data.ingest import Competition
from podium.data.integrity import Integrity
from podium.runs.ensemble import open_folder
from podium.runs.run import Run

PSEUDO = "pseudo"  # the source tag of pseudo-labelled rows


def open_source(path: str, key: str, comp: Competition) -> Run:
    """The finished run or ensemble folder named by config key ``key``, checked against this data's task and
    classes."""
    try:
        src = open_folder(path, writer=False)
    except PodiumError as e:
        raise PodiumError(f"{key}={path}: {e}") from None
    if src.status != "done":
        raise PodiumError(f"{key}={path}: the run is {src.status}, not done; use a finished run or ensemble.")
    classes = list(src.info.get("classes") or [])
    if classes and classes != list(comp.classes):
        raise PodiumError(f"{key}={path} predicts classes {list_some(classes)}, this data has "
                          f"{list_some(list(comp.classes))}; use a run of the same data.")
    return src


def provenance(src: Run) -> dict[str, Any]:
    """What a run records about a source: its folder, name, metric and CV score."""
    metrics = src.metrics if src.finished else {}
    return {"path": str(src.path), "name": src.path.name, "metric": metrics.get("metric"),
            "cv_score": metrics.get("cv_score")}


def oof_probabilities(src: Run, comp: Competition, folds: np.ndarray, key: str) -> np.ndarray:
    """The source's OOF probabilities of the competition's own training rows, joined by id and aligned with
    ``comp.train`` (rows that are not the competition's own: NaN), after checking ids and folds."""
    main = is_main(comp)
    ids = comp.train["id"].astype(str).to_numpy()
    oof = src.oof.assign(id=lambda d: d["id"].astype(str)).set_index("id")
    missing = [i for i in ids[main] if i not in oof.index]
    if missing:
        raise PodiumError(f"{key}={src.path}: {len(missing)} training id(s) have no out-of-fold prediction there "
                          f"({list_some(missing, 5)}); the source must validate every row of this data (all folds).")
    extra = sorted(set(oof.index) - set(ids[main]))
    if extra:
        raise PodiumError(f"{key}={src.path} holds {len(extra)} OOF id(s) that are not training rows of this data "
                          f"({list_some(extra, 5)}); use a run of the same data.")
    theirs = src.folds_table.assign(id=lambda d: d["id"].astype(str)).set_index("id")["fold"]
    moved = [(i, int(theirs[i]), int(f)) for i, f in zip(ids[main], folds[main]) if int(theirs[i]) != int(f)]
    if moved:
        i, a, b = moved[0]
        raise PodiumError(f"{key}={src.path} was trained on other folds ({len(moved)} row(s) differ, e.g. {i}: fold "
                          f"{a} there, {b} here), so its OOF predictions would leak validation rows. Train it with "
                          f"the same cv.folds and cv.seed, or set cv.folds_file={src.path / 'folds.csv'}.")
    out = np.full((len(ids), len(comp.classes)), np.nan, dtype=np.float64)
    out[main] = oof.loc[ids[main], list(comp.classes)].to_numpy(dtype=np.float64)
    return out


def with_pseudo(comp: Competition, integ: Integrity, cfg: PodiumConfig) -> tuple[Competition, Integrity, dict]:
    """``comp`` with the source's test predictions appended as train-only ``pseudo`` rows (never validated or
    scored): soft targets, or hard ones where the source is at least ``data.pseudo_threshold`` sure. Test images
    that duplicate training images are left out. Returns the provenance too."""
    dc = cfg.data
    if not dc.pseudo:
        return comp, integ, {}
    if comp.test is None:
        raise PodiumError(f"data.pseudo={dc.pseudo}: this data has no test images to pseudo-label.")
    src = open_source(dc.pseudo, "data.pseudo", comp)
    table = src.test_predictions.assign(id=lambda d: d["id"].astype(str)).set_index("id")
    test_ids = comp.test["id"].astype(str).tolist()
    missing = [i for i in test_ids if i not in table.index]
    if missing:
        raise PodiumError(f"data.pseudo={dc.pseudo} has no test prediction for {len(missing)} test id(s) "
                          f"({list_some(missing, 5)}); predict this data's test set with it first.")
    leaking = set(integ.overlap["test_id"].astype(str)) if len(integ.overlap) else set()
    probs = table.loc[test_ids, list(comp.classes)].to_numpy(dtype=np.float64)
    sure = np.maximum(probs, 1 - probs).min(axis=1) if comp.task.multilabel else probs.max(axis=1)
    keep = np.array([i not in leaking for i in test_ids]) & (sure >= dc.pseudo_threshold)
    soft = probs[keep]
    hard = (soft >= 0.5).astype(np.int64) if comp.task.multilabel else soft.argmax(axis=1)
    rows = comp.test[keep].reset_index(drop=True)
    k = cfg.cv.folds
    # "share": each pseudo row trains one fold's model (seeded by id, so resume and reruns agree); "all": every fold
    part = [zlib.crc32(f"{cfg.cv.seed}:{i}".encode()) % k for i in rows["id"]] if dc.pseudo_share == "fold" else -1
    new = pd.DataFrame({"id": PSEUDO + "/" + rows["id"].astype(str), "path": rows["path"], "source": PSEUDO,
                        "part": part})
    train = comp.train if "source" in comp.train.columns else comp.train.assign(source="train")
    train = pd.concat([train.assign(part=-1) if "part" not in train else train, new], ignore_index=True)
    targets = np.concatenate([comp.targets, hard.astype(comp.targets.dtype)])
    base = comp.train_targets if comp.train_targets is not None else comp.task.onehot(comp.targets, len(comp.classes))
    pseudo_targets = soft if dc.pseudo_threshold <= 0 else comp.task.onehot(hard, len(comp.classes))
    groups = np.concatenate([integ.groups, integ.groups.max(initial=-1) + 1 + np.arange(len(new))])
    comp = dataclasses.replace(comp, train=train, targets=targets,
                               train_targets=np.concatenate([base, pseudo_targets]).astype(np.float32))
    info = {**provenance(src), "rows": int(keep.sum()), "dropped_duplicates": len(leaking & set(test_ids)),
            "dropped_unsure": int(((sure < dc.pseudo_threshold) & ~np.isin(test_ids, list(leaking))).sum()),
            "share": dc.pseudo_share, "soft": dc.pseudo_threshold <= 0}
    return comp, dataclasses.replace(integ, groups=groups), info


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
    competition's rows, its test predictions on pseudo rows, softened by ``train.distill_temperature``; rows the
    teacher never predicted (data.extra) learn from their truth alone (the teacher part repeats it)."""
    tc = cfg.train
    if not tc.teacher:
        return comp, {}
    src = open_source(tc.teacher, "train.teacher", comp)
    teacher = oof_probabilities(src, comp, folds, "train.teacher")
    truth = comp.train_targets if comp.train_targets is not None else comp.task.onehot(comp.targets, len(comp.classes))
    truth = truth.astype(np.float64)
    pseudo = (comp.train["source"] == PSEUDO).to_numpy() if "source" in comp.train.columns else np.zeros(0, bool)
    if pseudo.any():
        preds = src.test_predictions.assign(id=lambda d: d["id"].astype(str)).set_index("id")
        ids = comp.train["id"][pseudo].str.removeprefix(PSEUDO + "/")
        known = ids.isin(preds.index).to_numpy()
        rows = np.flatnonzero(pseudo)[known]
        teacher[rows] = preds.loc[ids[known], list(comp.classes)].to_numpy(dtype=np.float64)
    gaps = np.isnan(teacher).any(axis=1)
    teacher[gaps] = truth[gaps]
    task = comp.task
    soft = task.from_logits(task.logits(np.clip(teacher, 1e-6, 1 - 1e-6)) / tc.distill_temperature)
    packed = np.concatenate([truth, soft], axis=1).astype(np.float32)
    return dataclasses.replace(comp, train_targets=packed), {
        **provenance(src), "alpha": tc.distill_alpha, "temperature": tc.distill_temperature}


def with_targets(comp: Competition, folds: np.ndarray, cfg: PodiumConfig) -> tuple[Competition, dict[str, Any]]:
    """Soft labels, then the teacher's targets (once the folds are known: both are checked against them), and
    what each came from (for run.json)."""
    comp, soft = with_soft_labels(comp, folds, cfg)
    comp, teacher = with_teacher(comp, folds, cfg)
    return comp, {k: v for k, v in {"soft_labels": soft, "teacher": teacher}.items() if v}


def source_paths(cfg: PodiumConfig) -> list[Path]:
    """The folders a config learns from (to refuse a run that would learn from itself, and for reports)."""
    return [Path(p) for p in (cfg.data.soft_labels, cfg.data.pseudo, cfg.train.teacher) if p]
