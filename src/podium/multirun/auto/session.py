"""``podium auto DATA --budget 2h``: the best submission a time budget buys, on time.

    probe     a few real steps of each candidate of the device's ladder, on this data (cached per machine)
    plan      runs, sizes, epochs and folds that fill the budget, printed as a table and saved as plan.json
              (``--dry-run`` stops here); a budget too small for an honest result is refused with the smallest one
    train     each run a complete run folder, the later ones re-planned after every epoch (``execute``)
    finish    the blend or the best run, pseudo-labels when time remains, the report (``finish``)
    summary   each step's predicted and actual minutes and the budget used (summary.json, summary.md), the final
              submission copied into the auto folder (``podium.runs.auto.AutoFolder``)

Wall time from the start to the final submission stays within 105% of the budget: the plan aims at ``TARGET`` of it,
and nothing starts whose calibrated prediction would pass it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podium.config import PodiumConfig
from podium.core.console import Reporter
from podium.core.errors import PodiumError
from podium.data.folders.ingest import Competition, load_competition
from podium.engine.accel import resolve_device
from podium.engine.finetune import effective_finetune
from podium.engine.fold import EpochHook
from podium.engine.tta import check_views
from podium.multirun.auto.clock import Clock, MonotonicClock, minutes, parse_budget
from podium.multirun.auto.execute import Session, Step, Trainer, run_config, train_runs
from podium.multirun.auto.finish import finish
from podium.multirun.auto.inference import InferenceLimit, inference_step
from podium.multirun.auto.ladder import LADDERS, ladder_for
from podium.multirun.auto.plan import MIN_EPOCHS, AutoPlan, Workload, make_plan, plan_table
from podium.multirun.auto.probe import KeyOf, Timer, TimingCache, measure, probe_ladder
from podium.runs.auto import AutoFolder
from podium.runs.ensemble import is_ensemble
from podium.runs.run import Run


def pipeline_trainer(data_dir: Path, cfg: PodiumConfig, on_epoch: EpochHook) -> Run:
    """``pipeline.train`` with the epoch hook (imported here: the pipeline is a layer below, loaded on use)."""
    from podium.pipeline import train

    return train(data_dir, cfg, on_epoch=on_epoch)


def auto(data_dir: str | Path, budget: str | float, base: PodiumConfig, dry_run: bool = False, ladder: str = "",
         clock: Clock | None = None, timer: Timer = measure, trainer: Trainer = pipeline_trainer,
         say: Callable[[str], None] | None = None, start: float | None = None,
         inference: InferenceLimit = InferenceLimit(), key_of: KeyOf | None = None,
         device: str = "") -> Run | dict[str, Any]:
    """Probe, plan, train, blend and finish within ``budget`` (seconds, or ``90s``/``15m``/``2h``/``1h30m``);
    returns the final run or ensemble folder, or with ``dry_run`` the plan (plan.json's content) untrained.
    ``start``: when the budget started on ``clock`` (default: now). ``inference``: the hidden test set's size and
    the time its prediction may take (``inference.inference_step``). ``key_of``, ``device``: the probe's cache key
    of a timing and the device the runs train on (default: this machine's; ``auto --ray`` passes the training
    node's, with a ``timer`` and ``trainer`` that run there, ``multirun.auto.remote``)."""
    clock = clock or MonotonicClock()
    start = clock.now() if start is None else start
    budget_s = parse_budget(budget)
    say = say or Reporter().print
    data_dir = Path(data_dir).expanduser().resolve()
    plan, notes = plan_auto(data_dir, budget_s, base, ladder, clock, start, timer, key_of, device)
    for note in notes:
        say(note)
    say(plan_table(plan))
    if dry_run:
        return plan.to_dict()
    folder = AutoFolder.create(base.run.root, data_dir.name)
    folder.write_plan(plan.to_dict())
    say(f"auto folder: {folder.path}")
    session = Session(plan, clock, start, say, [Step("probe", "probe", 0.0, plan.elapsed_s)], notes=list(notes))
    runs = train_runs(session, data_dir, base, trainer)
    final = finish(session, runs, data_dir, base, trainer)
    if final.submission_path.is_file():
        folder.copy_submission(final.submission_path)
    predicting = inference_step(session, final, data_dir, inference, folder)
    summary, table = summarize(session, final, folder, predicting)
    folder.write_summary(summary, table)
    say(table)
    return final


def workload(comp: Competition, base: PodiumConfig) -> Workload:
    """The data's size as the plan counts it: training and test images, views per prediction, a test set to
    pseudo-label."""
    n_test = 0 if comp.test is None else len(comp.test)
    views = len(check_views(base.predict.tta)) * len(base.predict.scales)
    freeze = effective_finetune(base.finetune, base.model.pretrained).freeze_epochs
    return Workload(len(comp.train), n_test, views, n_test > 0, freeze)


def plan_auto(data_dir: Path, budget_s: float, base: PodiumConfig, ladder: str, clock: Clock, start: float,
              timer: Timer, key_of: KeyOf | None = None, device: str = "") -> tuple[AutoPlan, list[str]]:
    """Read the data folder, probe the ladder and plan (refused in one line when the budget is too small); the
    probe's notes on candidates skipped come with the plan."""
    if not data_dir.is_dir():
        raise PodiumError(f"Data folder {data_dir} does not exist.")
    comp = load_competition(data_dir, base.data, check=False)
    comp = dataclasses.replace(comp, task=comp.task.for_loss(base.train.loss, len(comp.classes)))
    device = device or resolve_device(base.train.device)
    name = ladder or ladder_for(device)
    rungs = LADDERS.get(name)
    w = workload(comp, base)
    timings, notes = probe_ladder(rungs, lambda c: run_config(base, c, MIN_EPOCHS, 2, "auto-probe"), comp, w,
                                  budget_s, clock, start, TimingCache(), timer, key_of)
    return make_plan(timings, rungs, w, budget_s, clock.now() - start, device, name, base.cv.folds), notes


def summarize(session: Session, final: Run, folder: AutoFolder,
              predicting: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    """summary.json's content and its table: each step's predicted and actual minutes, the budget used, the
    hidden test set's forecast (``predicting``)."""
    wall, budget = session.elapsed, session.plan.budget_s
    metrics = final.metrics
    summary = {
        "budget_s": budget, "wall_s": wall, "used": wall / budget, "final": str(final.path),
        "final_kind": "ensemble" if is_ensemble(final.path) else "run", "metric": metrics.get("metric"),
        "cv_score": metrics.get("cv_score"), "folds": session.plan.folds, "ratio": session.ratio,
        "submission": str(folder.submission_path) if folder.submission_path.is_file() else None,
        "steps": [dataclasses.asdict(s) for s in session.steps], "notes": session.notes, "inference": predicting,
    }
    rows = ["| step | kind | predicted min | actual min | score | note |", "| --- | --- | --- | --- | --- | --- |"]
    rows += [f"| {s.name} | {s.kind} | {minutes(s.predicted_s)} | {minutes(s.actual_s)} | "
             f"{'' if s.score is None else f'{s.score:.4f}'} | {s.note} |" for s in session.steps]
    rows += ["", f"budget used: {minutes(wall)} of {minutes(budget)} min ({wall / budget:.0%}); final "
             f"{summary['final_kind']} {final.path.name}: CV {metrics.get('metric')} {metrics.get('cv_score', 0):.4f}",
             *([f"inference forecast: {predicting['line']}"] if predicting and "line" in predicting else []),
             *session.notes]
    return summary, "\n".join(rows)
