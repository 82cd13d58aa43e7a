"""``train``: a whole run, top to bottom.

    plan_run      the config was checked at load (``podium.api``, once); here: the data folder (ingest + integrity
                  checks), the folds, the model and its weights, what each fold will build, the batch size: every
                  mistake in the user's input stops here, before a run folder or a log row exists
    open_run      the run folder (new, or the one being resumed)
    start_run     run.json and the experiment-log row (running), config.yaml, folds.csv
    fit_fold      each fold (engine.fold), resumable after any interruption
    score_oof     oof.csv, the decisions fitted on it (decisions.json, embedded in the checkpoints), metrics.json
    predict_test  test predictions with the same prediction path as the OOF, and the validated submission.csv;
                  their throughput and a fresh decode's cost in run.json (inference forecasts)

``lifecycle`` marks the run interrupted (Ctrl-C, SIGTERM) or failed (with its reason) when it does not finish.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list

from podium.config import PodiumConfig, shown_precision
from podium.core.console import Reporter
from podium.core.errors import PodiumError
from podium.core.io import check_folder
from podium.data.folders.ingest import Competition, inferred_line, scored_by
from podium.data.integrity import Integrity, integrity_line, plan_folds, prepare
from podium.engine.accel import training_accelerator
from podium.engine.fold import EpochHook, FoldResult, check_fold_recipe, fit_fold
from podium.engine.probe import resolve_auto_batch
from podium.engine.trackers import check_trackers, describe_trackers
from podium.inference.checkpoints import predict_checkpoints, write_test_outputs
from podium.inference.pseudo import with_pseudo
from podium.inference.teachers import with_targets
from podium.inference.throughput import measure_inference
from podium.models.factory import check_model, resolve_preprocessing
from podium.reporting import report_after_training
from podium.runs.lifecycle import lifecycle
from podium.runs.run import OofRows, Run
from podium.runs.timings import time_breakdown, timing_line
from podium.tasks.crossfit import HonestScore, fit_parts, honest_score, parts_note
from podium.tasks.metrics import fit_decisions, per_class, refuse_untrusted, resolve_metric, score
from podium.tasks.suspects import suspect_table


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

    @property
    def images(self) -> int:
        """Training and test images: what the checks decoded."""
        return int(len(self.comp.train) + (0 if self.comp.test is None else len(self.comp.test)))


def train(data_dir: str | Path | None, cfg: PodiumConfig | None = None, resume: str | Path | Run | None = None,
          *, on_epoch: EpochHook | None = None) -> Run:
    """Train a K-fold run on ``data_dir`` with ``cfg`` (or resume the run folder ``resume``); return the Run.

    ``cfg`` is a checked config (``podium.api.make_config`` or ``podium.validation.validate``). ``on_epoch(fold,
    row)`` is called after every trained epoch with its log row (a search prunes trials with it).
    """
    t0 = time.time()
    plan = plan_run(data_dir, cfg, resume)
    accelerator = training_accelerator(plan.cfg)
    run = open_run(plan, accelerator)
    reporter = Reporter(run.log_path, accelerator.is_main_process)
    with lifecycle(run, reporter):
        start_run(plan, run, accelerator)
        describe(plan, run, accelerator, reporter)
        results = [fit_fold(k, plan.comp, plan.folds, plan.cfg, run, accelerator, reporter, on_epoch=on_epoch)
                   for k in plan.todo]
        metrics = score_oof(plan, run, results, accelerator)
        beside = HonestScore.from_fields(metrics).beside()  # the cross-fitted decisions, in-sample and plain scores
        reporter.print(f"CV {metrics['metric']}: {metrics['cv_score']:.4f} ({beside + '; ' if beside else ''}without "
                       f"TTA {metrics['cv_score_no_tta']:.4f})  overall: "
                       f"{', '.join(f'{k} {v:.4f}' for k, v in metrics['overall'].items())}")
        if metrics["decision_scores"]:  # every decoding, the fitted decisions judged on their own rows
            reporter.print("decisions fitted on the OOF rows (in-sample): " + ", ".join(
                f"{k} {v:.4f}" for k, v in metrics["decision_scores"].items() if isinstance(v, float)))
        t_test = time.perf_counter()
        predict_test(plan, run, accelerator, reporter)
        timings = time_breakdown(plan.prepare_s, [r.summary for r in results], time.perf_counter() - t_test,
                                 plan.images, {r.fold: r.oof_timing for r in results if r.oof_timing})
        run.write_timings(timings)
        reporter.print(timing_line(timings))
        wall = time.time() - t0
        stopped = {str(r.fold): r.summary["epochs"] for r in results if r.summary.get("stopped_early")}
        run.set_status("done", wall_s=wall, cv_score=metrics["cv_score"], img_size=results[0].summary["img_size"],
                       validated=validated(plan), stopped_early=stopped)  # fold -> epochs trained (train.patience)
        reporter.print(f"done in {wall:.0f} s")
        if plan.cfg.run.report and run.writer:
            report_after_training(run, reporter)
    return run


def plan_run(data_dir: str | Path | None, cfg: PodiumConfig | None, resume: str | Path | Run | None) -> Plan:
    """Check everything that depends on the user's input, before anything is written (``cfg``: a checked config)."""
    cfg, data_dir, run = read_request(data_dir, cfg, resume)
    prep = resolve_preprocessing(None, cfg.model, cfg.data)  # the model's input, known before the model exists
    started = run.info if run is not None else {}  # a resumed run keeps the task and metric it started with
    t0 = time.perf_counter()
    comp, integ = prepare(data_dir, as_started(cfg, started).data, prep=prep)  # the decode fills the image cache
    prepare_s = time.perf_counter() - t0
    # what the outputs mean (the loss's coding), and cv.metric (auto: the sample's, else the task's) fitting the task
    metric = as_started(cfg, started).cv.metric
    comp = replace(comp, task=resolve_metric(comp.task.for_loss(cfg.train.loss, len(comp.classes)),
                                             scored_by(comp, metric)))
    comp, integ, pseudo = with_pseudo(comp, integ, cfg)  # train-only rows: before the folds, which list them
    folds = plan_folds(comp, integ, cfg.cv, run.folds_path if run is not None and run.folds_path.is_file() else None)
    comp, sources = with_targets(comp, folds, cfg)  # soft labels, a teacher, matched pseudo: same folds?
    check_model(cfg.model)  # unknown architecture or no weights available here
    check_fold_recipe(comp, cfg, prep)  # the loss, sampler, augmentations and TTA views each fold will build
    cfg, batch_note = resolve_auto_batch(cfg, len(comp.classes))  # the saved config holds the concrete batch
    todo = list(cfg.cv.train_folds) or list(range(cfg.cv.folds))
    sources = {**({"pseudo": pseudo} if pseudo else {}), **sources}
    return Plan(cfg, data_dir, comp, integ, folds, todo, (batch_note,) if batch_note else (), run, prepare_s, sources)


def read_request(data_dir: str | Path | None, cfg: PodiumConfig | None, resume: str | Path | Run | None
                 ) -> tuple[PodiumConfig, Path, Run | None]:
    """The config and data folder to train with, and the run being resumed (which brings its saved config and data
    folder), with what no config check covers: a resumed run's trackers installed here, and files where the runs
    root or the data folder should be."""
    run = None
    if resume is not None:
        run = resume if isinstance(resume, Run) else Run.open(resume)
        cfg, data_dir = run.config, run.data_dir
        refuse_untrusted(cfg.cv.metric)  # a handed run's own metric runs only when the user names it again
        if not data_dir.is_dir():
            raise PodiumError(f"The run's data folder {data_dir} is gone; it is needed to resume {run.path}.")
        check_trackers(cfg.run)  # its config was checked when it started; this machine may lack a tracker's package
    elif data_dir is None or cfg is None:
        raise PodiumError("train needs a data folder and a config (or a run folder to resume).")
    else:
        check_folder(cfg.run.root, "run.root")  # a file there: say so now, not after checking every image
    data_dir = Path(data_dir).expanduser().resolve()
    if data_dir.exists() and not data_dir.is_dir():
        raise PodiumError(f"{data_dir} is a file; give the competition folder that holds train.csv or class folders.")
    return cfg, data_dir, run


def as_started(cfg: PodiumConfig, info: dict) -> PodiumConfig:
    """``cfg`` with the task and metric a resumed run started with (``info``: its run.json) where ``cfg`` leaves them
    to ``auto``: what auto infers may have changed since (grades as the ordinal task, the sample's metric), and the
    finished folds were trained and picked for the saved ones. The saved config itself is left as it was."""
    data = replace(cfg.data, task=info["task"]) if cfg.data.task == "auto" and info.get("task") else cfg.data
    cv = replace(cfg.cv, metric=info["metric"]) if cfg.cv.metric == "auto" and info.get("metric") else cfg.cv
    return replace(cfg, data=data, cv=cv)


def validated(plan: Plan) -> str:
    """Which rows the CV score is computed on: ``all folds``, or the folds ``cv.train_folds`` trained (a holdout
    run, ``folds 0 of 5``): runs are ranked together only when this is the same."""
    if len(plan.todo) == plan.cfg.cv.folds:
        return "all folds"
    return f"fold{'s' if len(plan.todo) > 1 else ''} {','.join(map(str, plan.todo))} of {plan.cfg.cv.folds}"


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
    inferred = inferred_line(comp, comp.task, plan.cfg.data.task, plan.cfg.cv.metric)  # and how to override it
    reporter.print(f"{comp.layout} layout, {inferred}; {len(comp.train)} "
                   f"training images, {len(comp.classes)} classes ({per_class_counts}), test images: "
                   f"{0 if comp.test is None else len(comp.test)}; device {accelerator.device}, "
                   f"precision {shown_precision(accelerator.mixed_precision)}")
    train_only = plan.folds < 0  # in no fold: data.extra and pseudo rows, and rows a cv.folds_file leaves out
    if train_only.any():
        sources = comp.train.get("source", pd.Series("train", index=comp.train.index))[train_only].value_counts()
        reporter.print(f"{int(train_only.sum())} train-only images ("
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
    run.write_suspects(suspect_table(comp.train["id"].to_numpy()[idx], fold_of, y, probs, task, comp.classes,
                                     decisions, plan.integ.conflicts))  # labels the OOF predictions contradict
    overall = score(task, y, probs, decisions=decisions)
    parts = fit_parts(fold_of, plan.integ.groups[idx])  # the folds, or a holdout's chunks (duplicates kept together)
    honest = honest_score(task, y, probs, parts, plan.cfg.predict, decisions, on=parts_note(fold_of, parts))
    if all(r.plain is not None for r in results):  # pooled over the OOF rows and cross-fitted, like cv_score
        plain = np.concatenate([r.plain for r in results])[order]
        # only its cross-fit is read: the TTA decisions stand in for the in-sample ones, saving a fit on every row
        no_tta = honest_score(task, y, plain, parts, plan.cfg.predict, decisions).cv_score
    else:  # folds trained before plain OOF probabilities were kept: the mean of their scores
        no_tta = float(np.mean([r.summary["score"] for r in results]))
    metrics = {
        "task": task.name, "metric": task.primary, **honest.fields(), "cv_score_no_tta": no_tta,
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
    if comp.test is None:  # the fresh decode is timed on training images; the OOF passes give the model's speed
        if run.folds_done():
            measure_inference(run, (), comp.train["path"].tolist(), run.load_best(run.folds_done()[0]),
                              accelerator.device.type)
        return
    checkpoints = run.checkpoints()
    pred = predict_checkpoints(checkpoints, comp.test["id"].tolist(), comp.test["path"].tolist(), accelerator)
    measure_inference(run, pred.timings, comp.test["path"].tolist(), checkpoints[0], accelerator.device.type)
    sub = write_test_outputs(run, pred, comp.submission)
    reporter.print(f"submission: {sub} ({len(pred.ids)} rows, validated"
                   f"{' against ' + comp.sample_path.name if comp.sample_path else ''})")
