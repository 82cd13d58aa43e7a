"""``merge``: runs that trained different folds (``cv.train_folds``) of one config, on separate machines or notebook
sessions, combined into one finished run, exactly as if it had been trained in one go.

    check     no run is still running (``ensemble.refuse_running``, the check ``podium ensemble`` makes); every run
              has the same config (but for cv.train_folds and machine-only keys), task, classes and folds.csv (ids,
              folds and labels); each finished fold comes from exactly one run
    assemble  a new run folder: config (cv.train_folds = the union), run.json, folds.csv, the finished fold folders
              (best.pt, logs, OOF) copied whole
    finish    ``pipeline.train(resume=...)``: the data is checked against folds.csv, the finished folds are read back
              (not retrained), then OOF, decisions, metrics, test predictions and the submission are computed as in
              any run

Nothing is written before the checks pass; a folder that fails while it is assembled is removed, and one that fails
while it is scored is marked failed, as a run is.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from podium.config import PodiumConfig, to_dict
from podium.core.errors import PodiumError
from podium.multirun.ensemble import check_same_folds, refuse_running
from podium.runs.run import Run
from podium.tasks.metrics import refuse_untrusted

# Keys that describe the machine or the bookkeeping, not the model: they may differ between the merged runs.
# cv.folds_file: the folds themselves are compared (folds.csv), wherever they were read from.
MACHINE_KEYS = frozenset({"cv.train_folds", "cv.folds_file", "train.device", "train.threads", "train.num_workers",
                          "run.root", "run.name", "run.report", "run.trackers", "run.mlflow_uri"})


def config_differences(a: PodiumConfig, b: PodiumConfig) -> list[str]:
    """``section.key`` of every value that differs between two configs, machine-only keys left out."""
    da, db = to_dict(a), to_dict(b)
    return [f"{s}.{k}" for s in da for k in da[s] if f"{s}.{k}" not in MACHINE_KEYS and da[s][k] != db[s].get(k)]


def check_mergeable(runs: list[Run]) -> dict[int, Run]:
    """Which run each finished fold comes from, after checking that the runs are parts of one run."""
    if len(runs) < 2:
        raise PodiumError(f"Merge needs at least two run folders; got {len(runs)}.")
    if len({r.path for r in runs}) < len(runs):
        raise PodiumError("The same run is named twice; name each run once.")
    for run in runs:
        refuse_running(run)  # its folds are still being written
    first, cfg = runs[0], runs[0].config
    refuse_untrusted(cfg.cv.metric)  # scoring the merged run runs it: only when the user names it again
    for run in runs[1:]:
        diff = config_differences(cfg, run.config)
        if diff:
            key = diff[0]
            s, k = key.split(".")
            raise PodiumError(f"{run.path.name} and {first.path.name} differ in {key} ({to_dict(run.config)[s][k]} vs "
                              f"{to_dict(cfg)[s][k]}); merge runs of one config that trained different "
                              "cv.train_folds.")
        for key in ("task", "classes"):
            if run.info.get(key) != first.info.get(key):
                raise PodiumError(f"{run.path.name} and {first.path.name} differ in {key}; they are not parts of "
                                  "one run.")
        check_same_folds(first, first.folds_table, run)
    owner: dict[int, Run] = {}
    for run in runs:
        done = run.folds_done()
        if not done:
            raise PodiumError(f"{run.path} has no finished fold; resume it (`podium resume`) before merging.")
        for fold in done:
            if fold in owner:
                raise PodiumError(f"Fold {fold} is finished in both {owner[fold].path.name} and {run.path.name}; "
                                  "merge runs that trained different folds (cv.train_folds).")
            owner[fold] = run
    return dict(sorted(owner.items()))


def merge(runs: list[str | Path] | tuple[str | Path, ...], out: str | Path, data: str | Path | None = None) -> Run:
    """Combine ``runs`` (the same config, each trained on some folds) into the new run folder ``out``, then score,
    decide and predict it as one run (``data``: the competition folder, when the runs' own is not at the same path
    here). Merging some of the folds gives a finished run of those folds, which merges again with the rest.
    Returns the finished Run."""
    from podium.pipeline import train as run_pipeline

    opened = [Run.open(p) for p in runs]
    owner = check_mergeable(opened)
    first = opened[0]
    data_dir = Path(data).expanduser().resolve() if data is not None else first.data_dir
    if not data_dir.is_dir():
        raise PodiumError(f"The runs' data folder {data_dir} is not here; give it with --data DIR.")
    target = Path(out).expanduser().resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise PodiumError(f"--out {target} already exists; give a new folder for the merged run.")
    cfg = first.config
    all_folds = tuple(range(cfg.cv.folds))
    todo = tuple(owner) if tuple(owner) != all_folds else ()
    cfg = replace(cfg, cv=replace(cfg.cv, train_folds=todo), run=replace(cfg.run, root=str(target.parent),
                                                                         name=target.name))
    target.mkdir(parents=True, exist_ok=True)
    merged = Run(target)
    try:
        merged.start(cfg, data_dir, summary_of(first))
        merged.adopt_folds_file(first)
        for fold, run in owner.items():
            merged.adopt_fold(fold, run)
    except BaseException:  # a half-assembled folder is not a run: remove it
        shutil.rmtree(target, ignore_errors=True)
        raise
    return run_pipeline(None, resume=merged)


def summary_of(run: Run) -> dict[str, Any]:
    """The run.json facts a run starts with (layout, task, classes, metric, device, precision)."""
    info = run.info
    return {k: info[k] for k in ("layout", "task", "classes", "metric", "device", "precision") if k in info}
