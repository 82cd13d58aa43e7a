"""``train``: the whole run. Ingest, folds, every fold, OOF metrics and threshold, test predictions, submission and
the experiment log, all in one self-contained run folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from accelerate.utils import broadcast_object_list

from podium.checkpoint import load_checkpoint
from podium.config import PodiumConfig, config_hash, dump_yaml
from podium.data.folds import check_folds, check_stratifiable, make_folds, read_folds
from podium.data.ingest import Competition
from podium.data.integrity import Integrity, integrity_line, prepare
from podium.engine.accel import make_accelerator
from podium.engine.finetune import effective_finetune
from podium.engine.fold import FoldResult, fit_fold
from podium.engine.probe import resolve_auto_batch
from podium.report import Reporter
from podium.errors import PodiumError
from podium.io import atomic_path, write_csv, write_json, write_text
from podium.metrics import fit_threshold, per_class, score
from podium.models.factory import check_model
from podium.predict.inference import fold_checkpoints, predict_checkpoints, write_test_outputs
from podium.tta import check_views
from podium.runs.folder import git_commit, new_run_dir, read_run_info, run_config, write_run_info
from podium.runs.log import record_run


def _folds(comp: Competition, integ: Integrity, cfg: PodiumConfig, run_dir: Path | None) -> np.ndarray:
    """The run's folds: read back from the run folder when resuming, from cv.folds_file, or computed (group-aware).

    Every duplicate cluster and user group must sit in one fold, whichever way the folds were made.
    """
    ids = comp.train["id"].tolist()
    saved = None if run_dir is None else run_dir / "folds.csv"
    if saved is not None and saved.is_file():
        folds, source = read_folds(saved, ids, cfg.cv.folds), str(saved)
    elif cfg.cv.folds_file:
        folds, source = read_folds(cfg.cv.folds_file, ids, cfg.cv.folds), cfg.cv.folds_file
    else:
        check_stratifiable(comp.targets, comp.task, comp.classes, ids)
        folds, source = make_folds(comp.targets, comp.task, cfg.cv.folds, cfg.cv.seed, integ.groups), "the folds"
    check_folds(folds, integ.groups, ids, source)
    return folds


def _oof(comp: Competition, results: list[FoldResult], cfg: PodiumConfig, run_dir: Path) -> dict[str, Any]:
    """Assemble ``oof.csv`` keyed by id, fit the multilabel threshold, and score everything into ``metrics.json``."""
    classes, task = list(comp.classes), comp.task
    idx = np.concatenate([r.val_idx for r in results])
    probs = np.concatenate([r.probs for r in results])
    order = np.argsort(idx)
    idx, probs = idx[order], probs[order]
    y = comp.targets[idx]
    threshold = cfg.predict.threshold
    if task.multilabel and threshold < 0:
        threshold = fit_threshold(y, probs)
    threshold = 0.5 if threshold < 0 else threshold
    fold_of = np.concatenate([np.full(len(r.val_idx), r.fold) for r in results])[order]
    oof = pd.DataFrame(probs, columns=classes)
    oof.insert(0, "label", [comp.label_strings()[i] for i in idx])
    oof.insert(0, "fold", fold_of)
    oof.insert(0, "id", comp.train["id"].to_numpy()[idx])
    write_csv(run_dir / "oof.csv", oof)
    overall = score(task, y, probs, threshold)
    metrics = {
        "task": task.name,
        "metric": task.primary,
        "cv_score": overall[task.primary],
        "cv_score_no_tta": float(np.mean([r.summary["score"] for r in results])),
        "threshold": threshold,
        "tta": list(cfg.predict.tta),
        "oof_rows": int(len(idx)),
        "overall": overall,
        "per_class": per_class(task, y, probs, classes, threshold),
        "per_fold": [r.summary for r in results],
    }
    write_json(run_dir / "metrics.json", metrics)
    return metrics


def _store_threshold(run_dir: Path, threshold: float) -> None:
    """Write the fitted threshold into every fold checkpoint, so each carries its own decision rule."""
    for path in fold_checkpoints(run_dir):
        ckpt = load_checkpoint(path)
        if ckpt.get("threshold") != threshold:
            ckpt["threshold"] = threshold
            with atomic_path(path) as tmp:
                torch.save(ckpt, tmp)


def train(data_dir: str | Path | None, cfg: PodiumConfig | None = None, resume: str | Path | None = None
          ) -> dict[str, Any]:
    """Train a K-fold run on ``data_dir`` (or resume the run folder ``resume``); return its summary."""
    t0 = time.time()
    if resume is not None:
        run_dir = Path(resume).expanduser().resolve()
        info = read_run_info(run_dir)
        cfg, data_dir = run_config(run_dir), Path(info["data_dir"])
    else:
        if data_dir is None or cfg is None:
            raise PodiumError("train needs a data folder and a config (or a run folder to resume).")
        data_dir = Path(data_dir).expanduser().resolve()
    check_views(cfg.predict.tta)
    comp, integ = prepare(data_dir, cfg.data)  # every input error stops here, before a run folder exists
    folds = _folds(comp, integ, cfg, run_dir if resume is not None else None)
    check_model(cfg.model)  # unknown architecture or no weights: stop before a run folder exists
    cfg, batch_note = resolve_auto_batch(cfg, len(comp.classes))  # the saved config holds the concrete batch
    todo = list(cfg.cv.train_folds) or list(range(cfg.cv.folds))
    bad = [f for f in todo if not 0 <= f < cfg.cv.folds]
    if bad:
        raise PodiumError(f"cv.train_folds has folds {bad} outside 0..{cfg.cv.folds - 1}.")
    accelerator = make_accelerator(cfg.train, effective_finetune(cfg.finetune, cfg.model.pretrained).freeze_epochs > 0)
    if resume is None:
        run_dir = new_run_dir(cfg, data_dir) if accelerator.is_main_process else Path()
        run_dir = Path(broadcast_object_list([str(run_dir)])[0])
    reporter = Reporter(run_dir / "train.log", accelerator.is_main_process)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    if accelerator.is_main_process:
        write_text(run_dir / "config.yaml", dump_yaml(cfg))
        write_run_info(run_dir, {"data_dir": str(data_dir), "layout": comp.layout, "task": comp.task.name,
                                 "classes": list(comp.classes), "status": "running",
                                 **({} if resume else {"started": started})})
        record_run(Path(cfg.run.root).expanduser().resolve(), {
            "run_dir": str(run_dir), "name": run_dir.name, "started": read_run_info(run_dir).get("started", started),
            "status": "running", "data_dir": str(data_dir), "task": comp.task.name, "model": cfg.model.name,
            "folds": cfg.cv.folds, "epochs": cfg.train.epochs, "metric": comp.task.primary,
            "config_hash": config_hash(cfg), "git_commit": git_commit(Path.cwd())})
    counts = comp.targets.sum(axis=0) if comp.task.multilabel else np.bincount(comp.targets)
    per_class = ", ".join(f"{c}: {n}" for c, n in zip(comp.classes, counts))
    reporter.print(f"[bold]{run_dir}[/bold]\n{comp.layout} layout, {comp.task.name} task, {len(comp.train)} training "
                   f"images, {len(comp.classes)} classes ({per_class}), test images: "
                   f"{0 if comp.test is None else len(comp.test)}; device {accelerator.device}, "
                   f"precision {accelerator.mixed_precision}")
    if batch_note:
        reporter.print(batch_note)
    if accelerator.is_main_process:
        write_csv(run_dir / "folds.csv", pd.DataFrame({"id": comp.train["id"], "fold": folds,
                                                       "label": comp.label_strings()}))
        integ.write_duplicates(run_dir)
    reporter.print(integrity_line(integ))
    accelerator.wait_for_everyone()

    results = [fit_fold(k, comp, folds, cfg, run_dir, accelerator, reporter) for k in todo]

    summary: dict[str, Any] = {"run_dir": str(run_dir)}
    if accelerator.is_main_process:
        metrics = _oof(comp, results, cfg, run_dir)
        _store_threshold(run_dir, metrics["threshold"])
        summary.update(metrics)
    metrics = broadcast_object_list([summary])[0]
    reporter.print(f"CV {metrics['metric']}: {metrics['cv_score']:.4f} (without TTA {metrics['cv_score_no_tta']:.4f})"
                   f"  overall: {', '.join(f'{k} {v:.4f}' for k, v in metrics['overall'].items())}")
    if comp.test is not None:
        pred = predict_checkpoints(fold_checkpoints(run_dir), comp.test["id"].tolist(), comp.test["path"].tolist(),
                                   accelerator)
        if accelerator.is_main_process:
            sub = write_test_outputs(run_dir, pred, comp.submission)
            reporter.print(f"submission: {sub} ({len(pred.ids)} rows, validated"
                           f"{' against ' + comp.sample_path.name if comp.sample_path else ''})")
            metrics["submission"] = str(sub)
    wall = time.time() - t0
    if accelerator.is_main_process:
        write_run_info(run_dir, {"status": "done", "wall_s": wall, "cv_score": metrics["cv_score"]})
        record_run(Path(cfg.run.root).expanduser().resolve(), {
            "run_dir": str(run_dir), "status": "done", "cv_score": metrics["cv_score"], "wall_s": wall,
            "img_size": int(load_checkpoint(fold_checkpoints(run_dir)[0])["preprocessing"]["size"])})
    reporter.print(f"done in {wall:.0f} s")
    return {**metrics, "wall_s": wall}
