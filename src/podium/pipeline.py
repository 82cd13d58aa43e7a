"""``train``: a whole run, top to bottom.

    plan_run      config and registries are checked at load; here: the data folder (ingest + integrity checks),
                  the folds, the model and its weights, the batch size: every mistake in the user's input stops
                  here, before a run folder or a log row exists
    open_run      the run folder (new, or the one being resumed)
    start_run     run.json and the experiment-log row (running), config.yaml, folds.csv
    fit_fold      each fold (engine.fold), resumable after any interruption
    score_oof     oof.csv, the decisions fitted on it (decisions.json, embedded in the checkpoints), metrics.json
    predict_test  test predictions with the same prediction path as the OOF, and the validated submission.csv

``lifecycle`` marks the run interrupted (Ctrl-C, SIGTERM) or failed (with its reason) when it does not finish.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import timm
import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list

from podium.config import PodiumConfig, shown_precision
from podium.core.console import Reporter
from podium.core.errors import PodiumError
from podium.core.io import check_folder
from podium.data.folders.extra import is_main
from podium.data.folders.ingest import Competition
from podium.data.integrity import Integrity, integrity_line, prepare
from podium.data.pixels.cache import StoreFiller, first_pass_filler
from podium.data.pixels.image_ops import image_ops
from podium.data.pixels.preprocessing import Preprocessing
from podium.data.training.dataset import SAMPLERS
from podium.data.training.folds import check_folds, check_stratifiable, make_folds, read_folds
from podium.data.training.transforms import create_transform, load_pipeline, seed_transform
from podium.engine.accel import make_accelerator
from podium.engine.finetune import effective_finetune
from podium.engine.fold import EpochHook, FoldResult, fit_fold
from podium.engine.losses import create_loss
from podium.engine.probe import resolve_auto_batch
from podium.engine.trackers import check_trackers, describe_trackers
from podium.engine.tta import check_shape_kept
from podium.inference.checkpoints import predict_checkpoints, write_test_outputs
from podium.inference.pseudo import with_pseudo
from podium.inference.teachers import with_targets
from podium.models.factory import check_model
from podium.reporting import report_after_training
from podium.runs.lifecycle import lifecycle
from podium.runs.run import OofRows, Run
from podium.tasks.metrics import fit_decisions, per_class, refuse_untrusted, resolve_metric, score
from podium.validation import validate


@dataclass(frozen=True)
class Plan:
    """A run that has passed every check: its config, data, folds and the folds to train."""

    cfg: PodiumConfig
    data_dir: Path
    comp: Competition
    integ: Integrity
    folds: np.ndarray
    todo: list[int]
    notes: tuple[str, ...]
    resume: Run | None
    prepare_s: float = 0.0  # reading the folder, checks, hashes and (first run) the cache, in one decode per image
    sources: dict = field(default_factory=dict)  # the runs its soft, pseudo or teacher targets come from


def train(data_dir: str | Path | None, cfg: PodiumConfig | None = None, resume: str | Path | Run | None = None,
          *, on_epoch: EpochHook | None = None) -> Run:
    """Train a K-fold run on ``data_dir`` with ``cfg`` (or resume the run folder ``resume``); return the Run.

    ``on_epoch(fold, row)`` is called after every trained epoch with its log row (a search prunes trials with it).
    """
    t0 = time.time()
    plan = plan_run(data_dir, cfg, resume)
    accelerator = make_accelerator(plan.cfg.train, effective_finetune(plan.cfg.finetune,
                                                                     plan.cfg.model.pretrained).freeze_epochs > 0)
    run = open_run(plan, accelerator)
    reporter = Reporter(run.log_path, accelerator.is_main_process)
    with lifecycle(run, reporter):
        start_run(plan, run, accelerator)
        describe(plan, run, accelerator, reporter)
        results = [fit_fold(k, plan.comp, plan.folds, plan.cfg, run, accelerator, reporter, on_epoch=on_epoch)
                   for k in plan.todo]
        metrics = score_oof(plan, run, results, accelerator)
        reporter.print(f"CV {metrics['metric']}: {metrics['cv_score']:.4f} (without TTA "
                       f"{metrics['cv_score_no_tta']:.4f})  overall: "
                       f"{', '.join(f'{k} {v:.4f}' for k, v in metrics['overall'].items())}")
        if metrics["decision_scores"]:  # the CV score decodes plainly; fitted decisions judged on their own rows
            reporter.print("decisions fitted on the OOF rows (in-sample): " + ", ".join(
                f"{k} {v:.4f}" for k, v in metrics["decision_scores"].items() if isinstance(v, float)))
        t_test = time.perf_counter()
        predict_test(plan, run, accelerator, reporter)
        timings = time_breakdown(plan, results, time.perf_counter() - t_test)
        run.write_timings(timings)
        reporter.print(timing_line(timings))
        wall = time.time() - t0
        run.set_status("done", wall_s=wall, cv_score=metrics["cv_score"], img_size=results[0].summary["img_size"],
                       validated=validated(plan))
        reporter.print(f"done in {wall:.0f} s")
        if plan.cfg.run.report and run.writer:
            report_after_training(run, reporter)
    return run


def time_breakdown(plan: Plan, results: list[FoldResult], test_s: float) -> dict:
    """Where the run's time went: preparation (checks, hashes, first-run cache), each fold's cache and epochs (training
    and validation), test prediction; folds trained before this process (resumed) are left out."""
    folds = [{"fold": r.fold, "cache_s": round(float(r.summary.get("cache_s", 0.0)), 3),
              "epochs_s": [round(float(s), 3) for s in r.summary.get("epochs_wall_s", [])]}
             for r in results if "epochs_wall_s" in r.summary]
    return {"prepare_s": round(plan.prepare_s, 3), "folds": folds, "test_s": round(test_s, 3),
            "images": int(len(plan.comp.train) + (0 if plan.comp.test is None else len(plan.comp.test)))}


def timing_line(t: dict) -> str:
    """One line of the breakdown for the log."""
    epochs = [s for f in t["folds"] for s in f["epochs_s"]]
    cache = sum(f["cache_s"] for f in t["folds"])
    per_epoch = f"{len(epochs)} epoch(s), {sum(epochs):.1f} s ({np.median(epochs):.1f} s median)" if epochs else \
        "no epoch trained here"
    return (f"time: checks, hashes and cache {t['prepare_s']:.1f} s ({t['images']} images, one decode each); "
            f"cache top-up in folds {cache:.1f} s; {per_epoch}; test prediction {t['test_s']:.1f} s")


def plan_run(data_dir: str | Path | None, cfg: PodiumConfig | None, resume: str | Path | Run | None) -> Plan:
    """Check everything that depends on the user's input, before anything is written."""
    run = None
    if resume is not None:
        run = resume if isinstance(resume, Run) else Run.open(resume)
        cfg, data_dir = run.config, run.data_dir
        refuse_untrusted(cfg.cv.metric)  # a handed run's own metric runs only when the user names it again
        if not data_dir.is_dir():
            raise PodiumError(f"The run's data folder {data_dir} is gone; it is needed to resume {run.path}.")
    elif data_dir is None or cfg is None:
        raise PodiumError("train needs a data folder and a config (or a run folder to resume).")
    else:
        validate(cfg)  # registry names and relations; a no-op after podium.api's own call, a check for direct callers
        check_folder(cfg.run.root, "run.root")  # a file there: say so now, not after checking every image
    check_trackers(cfg.run)  # a resumed run's saved config is not validated again, but its trackers must exist here
    data_dir = Path(data_dir).expanduser().resolve()
    if data_dir.exists() and not data_dir.is_dir():
        raise PodiumError(f"{data_dir} is a file; give the competition folder that holds train.csv or class folders.")
    t0 = time.perf_counter()
    comp, integ = prepare(data_dir, cfg.data, cache=first_pass_cache(cfg))
    prepare_s = time.perf_counter() - t0
    comp = replace(comp, task=comp.task.for_loss(cfg.train.loss, len(comp.classes)))  # what the outputs mean
    comp = replace(comp, task=resolve_metric(comp.task, cfg.cv.metric))  # cv.metric fits the detected task
    comp, integ, pseudo = with_pseudo(comp, integ, cfg)  # train-only rows: before the folds, which list them
    check_loss(comp, cfg)
    SAMPLERS.get(cfg.train.sampler)(comp.task, comp.targets, len(comp.classes))  # e.g. balanced on multilabel
    if cfg.aug.pipeline:
        load_pipeline(cfg.aug.pipeline)  # a missing or unusable file stops here
    folds = plan_folds(comp, integ, cfg, run)
    comp, sources = with_targets(comp, folds, cfg)  # soft labels, a teacher, matched pseudo: same folds?
    check_model(cfg.model)  # unknown architecture or no weights available here
    check_input_shape(cfg)
    cfg, batch_note = resolve_auto_batch(cfg, len(comp.classes))  # the saved config holds the concrete batch
    todo = list(cfg.cv.train_folds) or list(range(cfg.cv.folds))
    sources = {**({"pseudo": pseudo} if pseudo else {}), **sources}
    return Plan(cfg, data_dir, comp, integ, folds, todo, (batch_note,) if batch_note else (), run, prepare_s, sources)



def first_pass_cache(cfg: PodiumConfig) -> Callable[[list[str]], StoreFiller | None] | None:
    """The decoded-image stores the run's folds and test prediction will read, for the check pass to fill with the
    same decode (one decode per image on a first run); None when the model's input size is not known without
    creating the model (then the folds fill the cache themselves, still with reduced JPEG decodes)."""
    if not cfg.data.cache:
        return None
    size = cfg.model.img_size
    if not size:
        try:  # the default input size of the architecture, as resolve_preprocessing will read it
            size = tuple(int(v) for v in timm.models.get_pretrained_cfg(cfg.model.name).input_size[-2:])
        except Exception:  # noqa: BLE001 - a name timm cannot resolve here: the folds fill the cache themselves
            return None
    ops = image_ops(cfg.data)
    return lambda paths: first_pass_filler(paths, tuple(size), cfg.data, ops)


def validated(plan: Plan) -> str:
    """Which rows the CV score is computed on: ``all folds``, or the folds ``cv.train_folds`` trained (a holdout
    run, ``folds 0 of 5``): runs are ranked together only when this is the same."""
    if len(plan.todo) == plan.cfg.cv.folds:
        return "all folds"
    return f"fold{'s' if len(plan.todo) > 1 else ''} {','.join(map(str, plan.todo))} of {plan.cfg.cv.folds}"


def check_input_shape(cfg: PodiumConfig) -> None:
    """With a rectangular ``model.img_size``, the training augmentations and the TTA views must keep every image at
    that height x width (a quarter turn would make a batch of mixed shapes mid-run): the training pipeline is drawn on
    dummy images of several shapes, with several seeds, and each view is applied to a dummy batch."""
    if len(cfg.model.img_size) != 2:
        return  # a square input keeps its shape under every op and view
    hw = (cfg.model.img_size[0], cfg.model.img_size[1])
    prep = Preprocessing(hw[0], cfg.model.resize, "bilinear", (0.5,) * 3, (0.5,) * 3, 0.875, width=hw[1],
                         pad_fill=cfg.model.pad_fill)
    check_shape_kept(cfg.predict.tta, hw)
    transform = create_transform(prep, cfg.aug, train=True)
    for seed in range(16):
        seed_transform(transform, seed)
        for shape in ((hw[0] + 37, hw[1] + 11), (hw[1] + 5, hw[0] + 29)):
            out = transform(image=np.zeros((*shape, 3), np.uint8))["image"].shape[:2]
            if tuple(out) != hw:
                what = f"aug.pipeline={cfg.aug.pipeline}" if cfg.aug.pipeline else f"aug.ops={','.join(cfg.aug.ops)}"
                raise PodiumError(f"{what} gives {out[0]}x{out[1]} training images for model.img_size="
                                  f"{hw[0]}x{hw[1]} (height x width); drop rotate90 (or put it before "
                                  "random_resized_crop), or use a square size.")


def check_loss(comp: Competition, cfg: PodiumConfig) -> None:
    """The configured loss must fit the task's targets (``train.loss=bce`` on a single-label task, say): tried on a
    dummy batch of the task's own targets, so every registered loss is judged the same way."""
    targets = comp.targets[:2]
    try:
        loss_fn = create_loss(cfg.train.loss, comp.task, cfg.train.label_smoothing, cfg.train.class_weights,
                              comp.targets, len(comp.classes), gamma=cfg.train.focal_gamma)
        loss_fn(torch.zeros(len(targets), comp.task.outputs(len(comp.classes))), torch.as_tensor(targets))
    except (RuntimeError, ValueError, IndexError) as e:
        raise PodiumError(f"train.loss={cfg.train.loss} does not fit the {comp.task.name} task's targets "
                          f"({str(e).splitlines()[0]}); use train.loss=auto.") from None


def plan_folds(comp: Competition, integ: Integrity, cfg: PodiumConfig, run: Run | None) -> np.ndarray:
    """The run's folds: read back when resuming, from cv.folds_file, or computed (stratified, group-aware).

    Every duplicate cluster and user group must sit in one fold, whichever way the folds were made.
    """
    ids = comp.train["id"].tolist()
    main = is_main(comp)  # data.extra rows train in every fold and validate in none (fold -1)
    if run is not None and run.folds_path.is_file():
        folds, source = read_folds(run.folds_path, ids, cfg.cv.folds), str(run.folds_path)
    elif cfg.cv.folds_file:
        folds = np.full(len(ids), -1, dtype=np.int64)  # the user's file covers the competition's own rows
        folds[main] = read_folds(cfg.cv.folds_file, [i for i, m in zip(ids, main) if m], cfg.cv.folds)
        source = cfg.cv.folds_file
    else:
        targets, groups = comp.targets[main], integ.groups[main]
        check_stratifiable(targets, comp.task, comp.classes, [i for i, m in zip(ids, main) if m], k=cfg.cv.folds,
                           groups=groups)
        folds = np.full(len(ids), -1, dtype=np.int64)
        folds[main] = make_folds(targets, comp.task, cfg.cv.folds, cfg.cv.seed, groups, classes=comp.classes)
        source = "the folds"
    check_folds(folds, integ.groups, ids, source)
    return folds


def open_run(plan: Plan, accelerator: Accelerator) -> Run:
    """The run folder: created on the main process and shared with the others, or the one being resumed."""
    if plan.resume is not None:
        return Run(plan.resume.path, writer=accelerator.is_main_process)
    path = str(Run.create(plan.cfg, plan.data_dir).path) if accelerator.is_main_process else ""
    return Run(broadcast_object_list([path])[0], writer=accelerator.is_main_process)


def start_run(plan: Plan, run: Run, accelerator: Accelerator) -> None:
    """Mark the run running in run.json and the experiment log, and write its config, folds and duplicates (inside
    the lifecycle, so a failure here marks the run failed)."""
    comp = plan.comp
    run.start(plan.cfg, plan.data_dir, {"layout": comp.layout, "task": comp.task.name, "classes": list(comp.classes),
                                        "metric": comp.task.primary, "device": str(accelerator.device),
                                        **({"class_names": comp.class_names} if comp.class_names else {}),
                                        "precision": accelerator.mixed_precision, "sources": plan.sources})
    folds = pd.DataFrame({"id": comp.train["id"], "fold": plan.folds, "label": comp.label_strings()})
    if "source" in comp.train.columns:  # data.extra: where each row comes from
        folds["source"] = comp.train["source"].to_numpy()
    run.write_folds(folds)
    run.write_duplicates(plan.integ.duplicates)
    accelerator.wait_for_everyone()


def describe(plan: Plan, run: Run, accelerator: Accelerator, reporter: Reporter) -> None:
    """The run's opening lines: folder, data, device, and what the checks found."""
    comp = plan.comp
    counts = comp.task.counts(comp.targets, len(comp.classes))
    per_class_counts = ", ".join(f"{comp.shown(c)}: {n}" for c, n in zip(comp.classes, counts))
    reporter.print(str(run.path), style="bold")
    reporter.print(f"{comp.layout} layout, {comp.task.name} task, {len(comp.train)} "
                   f"training images, {len(comp.classes)} classes ({per_class_counts}), test images: "
                   f"{0 if comp.test is None else len(comp.test)}; device {accelerator.device}, "
                   f"precision {shown_precision(accelerator.mixed_precision)}")
    main = is_main(comp)
    if not main.all():
        sources = comp.train["source"][~main].value_counts()
        reporter.print(f"{int((~main).sum())} train-only images ("
                       f"{', '.join(f'{k}: {v}' for k, v in sources.items())}), never validated or scored")
    for what, src in plan.sources.items():  # soft labels, pseudo-labels, a teacher: which run they come from
        score = "" if src.get("cv_score") is None else f", cv {src['metric']} {src['cv_score']:.4f}"
        detail = f": {src['note']}" if "note" in src else ""  # e.g. how the pseudo rows were labelled
        reporter.print(f"{what.replace('_', ' ')} from {src['name']}{score}{detail}")
    for note in (*comp.notes, *plan.notes):  # what ingest decided where the folder left it open, then the plan's
        reporter.print(note)
    if plan.cfg.run.trackers:
        reporter.print(f"trackers: {describe_trackers(plan.cfg.run, run.runs_root)}")
    reporter.print(integrity_line(plan.integ))


def score_oof(plan: Plan, run: Run, results: list[FoldResult], accelerator: Accelerator) -> dict:
    """Assemble oof.csv keyed by id, fit the decisions on it, and score everything into metrics.json."""
    comp, task = plan.comp, plan.comp.task
    idx = np.concatenate([r.val_idx for r in results])
    probs = np.concatenate([r.probs for r in results])
    fold_of = np.concatenate([np.full(len(r.val_idx), r.fold) for r in results])
    order = np.argsort(idx)
    idx, probs, fold_of = idx[order], probs[order], fold_of[order]
    y = comp.targets[idx]
    source = comp.train["source"].to_numpy()[idx] if "source" in comp.train.columns else None
    run.write_oof(OofRows(comp.train["id"].to_numpy()[idx], fold_of, y, probs, task, comp.classes, source))
    decisions = fit_decisions(task, y, probs, plan.cfg.predict)  # thresholds, cut points, for the metric
    run.write_decisions(decisions)
    overall = score(task, y, probs, decisions=decisions)
    if all(r.plain is not None for r in results):  # pooled over the OOF rows, like cv_score
        plain = np.concatenate([r.plain for r in results])[order]
        no_tta = score(task, y, plain, decisions=decisions)[task.primary]
    else:  # folds trained before plain OOF probabilities were kept: the mean of their scores
        no_tta = float(np.mean([r.summary["score"] for r in results]))
    metrics = {
        "task": task.name, "metric": task.primary, "cv_score": overall[task.primary], "cv_score_no_tta": no_tta,
        "threshold": decisions.get("threshold"), "decisions": decisions, "tta": list(plan.cfg.predict.tta),
        "oof_rows": int(len(idx)), "validated": validated(plan), "overall": overall,
        "decision_scores": task.decision_report(y, probs, decisions),  # plain decoding next to the fitted decisions
        "per_class": per_class(task, y, probs, list(comp.classes), decisions=decisions),
        "per_fold": [r.summary for r in results],
    }
    run.write_metrics(metrics)
    accelerator.wait_for_everyone()  # the other processes read the checkpoints with their decisions next
    return metrics


def predict_test(plan: Plan, run: Run, accelerator: Accelerator, reporter: Reporter) -> None:
    """Fold-averaged test predictions (TTA as configured) and the submission, when the data has a test set."""
    comp = plan.comp
    if comp.test is None:
        return
    pred = predict_checkpoints(run.checkpoints(), comp.test["id"].tolist(), comp.test["path"].tolist(), accelerator)
    sub = write_test_outputs(run, pred, comp.submission)
    reporter.print(f"submission: {sub} ({len(pred.ids)} rows, validated"
                   f"{' against ' + comp.sample_path.name if comp.sample_path else ''})")
