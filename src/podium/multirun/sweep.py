"""``sweep``: every combination of ``--grid key=v1,v2`` axes on top of the usual config, each an ordinary run.

    plan_sweep   the axes and every combination's config checked (unknown keys, empty axes, bad values: one line,
                 before anything runs), and the data checked through ``pipeline.plan_run`` (a data-level mistake such
                 as too many folds stops the sweep in one line instead of failing every combination); each
                 combination gets a deterministic run name from its axis values, so a second call of the same sweep
                 finds the runs of the first
    run_sweep    finished combinations are skipped, an interrupted one resumes (``pipeline.train(None, resume=...)``),
                 the others train; a failing one is recorded failed with its one-line reason and the sweep goes on.
                 With ``jobs`` > 1, combinations run in that many processes, the CPU cores divided between them
                 (``train.threads``), each process on one GPU in turn (``CUDA_VISIBLE_DEVICES``); on one GPU they run
                 one at a time unless asked otherwise. ``in_processes`` and ``worker_threads`` are that mechanism,
                 shared with ``podium search --jobs``. With ``ray`` each combination is a Ray task (``fanout``)
    sweep_table  sweep.csv in ``<run.root>/sweeps/<name>/``: every axis value, CV score with and without TTA, seconds
                 per epoch, peak memory, parameters, wall time and status, read back from each run folder
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import queue
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from podium.config import PodiumConfig, config_hash, from_dict, merge, to_dict
from podium.core.errors import Interrupted, PodiumError
from podium.runs.run import Run
from podium.runs.sweeps import SweepFolder
from podium.tasks.metrics import metric_key
from podium.validation import validate


@dataclass(frozen=True)
class Combo:
    """One combination: its axis values (as given), its run name and its checked config."""

    values: dict[str, str]
    name: str
    cfg: PodiumConfig


@dataclass(frozen=True)
class Sweep:
    """A checked sweep: the data folder, the axes, every combination and the sweep's folder."""

    data_dir: Path
    axes: dict[str, list[str]]
    combos: list[Combo]
    folder: SweepFolder
    jobs: int

    @property
    def runs(self) -> list[str]:
        """The run name of every combination, in grid order."""
        return [c.name for c in self.combos]


def parse_grid(grid: list[str] | tuple[str, ...]) -> dict[str, list[str]]:
    """``["model.name=a,b", "model.img_size=128,160"]`` -> {key: [values]}; a bad axis is a one-line error."""
    axes: dict[str, list[str]] = {}
    for item in grid:
        if "=" not in item:
            raise PodiumError(f"--grid {item!r} must look like section.key=v1,v2 (e.g. model.img_size=128,160).")
        key, text = (part.strip() for part in item.split("=", 1))
        values = [v.strip() for v in text.split(",")]
        if not text.strip() or not all(values):
            raise PodiumError(f"--grid {item!r} has an empty value; give one or more comma-separated values.")
        if key in axes:
            raise PodiumError(f"--grid names {key} twice; give all its values in one --grid {key}=v1,v2.")
        if len(set(values)) < len(values):
            raise PodiumError(f"--grid {key} repeats a value ({text}); give each value once.")
        axes[key] = values
    if not axes:
        raise PodiumError("A sweep needs at least one --grid section.key=v1,v2 axis.")
    return axes


def slug(values: dict[str, str]) -> str:
    """The axis values as a folder-name part: ``tf_efficientnet_lite0-crop-128``."""
    return "-".join(re.sub(r"[^A-Za-z0-9._]+", "_", v) for v in values.values())


def plan_sweep(data_dir: str | Path, base: PodiumConfig, grid: list[str] | tuple[str, ...], name: str = "",
               jobs: int = 1) -> Sweep:
    """Check the data folder, the axes and every combination's config, and the data with them (``check_data``); name
    the sweep and its runs. Nothing is written."""
    data_dir = Path(data_dir).expanduser().resolve()
    if not data_dir.is_dir():
        raise PodiumError(f"Data folder {data_dir} does not exist.")
    if jobs < 1:
        raise PodiumError(f"--jobs must be at least 1, got {jobs}.")
    axes = parse_grid(grid)
    if "run.name" in axes or "run.root" in axes:
        raise PodiumError("run.name and run.root cannot be swept: the sweep names its runs and keeps them together.")
    digest = hashlib.sha1(json.dumps([config_hash(base), axes, str(data_dir)]).encode()).hexdigest()[:8]
    name = name or f"{data_dir.name}-{digest}"
    combos = []
    for values in itertools.product(*axes.values()):
        chosen = dict(zip(axes, values))
        run_name = f"{name}-{slug(chosen)}"
        cfg = validate(merge(base, [*(f"{k}={v}" for k, v in chosen.items()), f"run.name={run_name}"]))
        combos.append(Combo(chosen, run_name, cfg))
    check_data(data_dir, combos)
    return Sweep(data_dir, axes, combos, SweepFolder.at(base.run.root, name), jobs)


def check_data(data_dir: Path, combos: list[Combo]) -> None:
    """Run ``pipeline.plan_run`` (data folder, integrity checks, folds, model) on the combinations until one passes.

    When none passes, every combination would fail on the user's input in the same way (``cv.folds=20`` on a small
    data set), so the first one's error stops the sweep before its folder exists. When one passes, the others train
    and a combination of its own that is wrong (an unknown model on one axis value) is recorded failed as usual.
    The image checks are cached, so planning again after a failure costs little.
    """
    from podium.pipeline import plan_run

    first: PodiumError | None = None
    for combo in combos:
        try:
            plan_run(data_dir, combo.cfg, None)
            return
        except PodiumError as e:
            first = first or e
    if first is not None:
        raise first


def find_run(cfg: PodiumConfig) -> Run | None:
    """The newest run folder named for this combination (``<run.name>-<timestamp>``), or None."""
    root = Path(cfg.run.root).expanduser().resolve()
    pattern = re.compile(rf"^{re.escape(cfg.run.name)}-\d{{8}}-\d{{6}}(-\d+)?$")
    found = sorted(p for p in root.glob(f"{cfg.run.name}-*") if pattern.match(p.name) and Run.is_run(p))
    return Run(found[-1]) if found else None


def run_combination(data_dir: str, raw_cfg: dict[str, Any], threads: int = 0) -> dict[str, Any]:
    """Train (or resume, or skip) one combination; return {run_dir, status, reason}. Errors become a failed status
    with their one-line reason; an interruption goes on to the caller."""
    cfg = from_dict(raw_cfg)
    if threads and cfg.train.threads == 0:
        cfg = merge(cfg, [f"train.threads={threads}"])
    run = find_run(cfg)
    status = run.status if run is not None else "new"
    if status in ("done", "running"):  # running: alive in another process (a parallel call of the same sweep)
        return {"run_dir": str(run.path), "status": status, "reason": ""}
    from podium.pipeline import train

    try:
        if status == "interrupted":
            run = train(None, resume=run)
        else:  # new, or failed before: train it afresh
            run = train(data_dir, cfg)
        return {"run_dir": str(run.path), "status": "done", "reason": ""}
    except (Interrupted, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - a combination's failure (out of memory, a bad value) must not stop the rest
        again = find_run(cfg)
        reason = str(e) if isinstance(e, PodiumError) else f"{type(e).__name__}: {str(e).strip()}"
        return {"run_dir": str(again.path) if again else "", "status": "failed",
                "reason": (reason.splitlines() or [""])[0][:300]}


def run_sweep(sweep: Sweep, threads: int = 0, ray: Any = None) -> pd.DataFrame:
    """Run every combination (skipping finished ones), writing sweep.csv after each; return the table. ``ray``: a
    ``fanout.RayOptions``, each combination a Ray task (a failed one is a failed row; the others go on)."""
    sweep.folder.write_plan(sweep.data_dir, sweep.axes, sweep.runs)
    outcomes: dict[int, dict[str, Any]] = {}
    try:
        if ray is not None:
            from podium.multirun.fanout import run_configs

            for i, outcome in run_configs(sweep.data_dir, [c.cfg for c in sweep.combos], ray):
                outcomes[i] = outcome
                write_table(sweep, outcomes)
        elif sweep.jobs == 1:
            for i, combo in enumerate(sweep.combos):
                outcomes[i] = run_combination(str(sweep.data_dir), to_dict(combo.cfg), threads)
                write_table(sweep, outcomes)
        else:
            run_parallel(sweep, outcomes, worker_threads(sweep.jobs, threads))
    finally:
        table = write_table(sweep, outcomes)
    return table


def run_parallel(sweep: Sweep, outcomes: dict[int, dict[str, Any]], threads: int) -> None:
    """Run the combinations in ``sweep.jobs`` spawned processes with ``threads`` torch threads each."""
    calls = [(str(sweep.data_dir), to_dict(c.cfg), threads) for c in sweep.combos]
    for i, future in in_processes(run_combination, calls, sweep.jobs):
        try:
            outcomes[i] = future.result()
        except BrokenProcessPool as e:
            outcomes[i] = {"run_dir": "", "status": "failed", "reason": f"worker process died ({e})"[:300]}
        write_table(sweep, outcomes)


def in_processes(fn: Callable[..., Any], calls: list[tuple[Any, ...]], jobs: int) -> Iterator[tuple[int, Future]]:
    """Submit ``fn(*args)`` for every ``args`` of ``calls`` to ``jobs`` worker processes; yield (index, future) in
    call order, for the caller to take each result (or error) as it comes. The pool is shut down when the caller has
    gone through them all.

    Workers are spawned, not forked: a forked child would inherit torch's thread pools and Accelerate's state. With
    GPUs, each worker sees one of them (``CUDA_VISIBLE_DEVICES``, in turn), so the jobs spread over the GPUs instead
    of all landing on the first.
    """
    context = get_context("spawn")
    gpus, found = context.Queue(), visible_gpus()
    for gpu in itertools.islice(itertools.cycle(found), jobs if found else 0):
        gpus.put(gpu)
    pinned = {"initializer": take_gpu, "initargs": (gpus,)} if found else {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, **pinned) as pool:
        futures = [pool.submit(fn, *args) for args in calls]
        yield from enumerate(futures)


def visible_gpus() -> list[str]:
    """The CUDA GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (empty without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    given = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    return [g.strip() for g in given.split(",") if g.strip()] if given else [str(i) for i in
                                                                               range(torch.cuda.device_count())]


def take_gpu(gpus: Any, wait: float = 10.0) -> None:
    """A worker process's start: the next GPU of the queue becomes its only one (before it touches CUDA). The queue
    holds one GPU per worker; a worker started later in place of one that died finds it empty and sees them all."""
    try:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus.get(timeout=wait)
    except queue.Empty:
        pass


def worker_threads(jobs: int, threads: int = 0) -> int:
    """Torch threads for each of ``jobs`` processes on this machine: ``threads`` if given, else the cores divided
    between them (several processes each using every core would slow one another down)."""
    return threads or max(1, cpu_count() // jobs)


def cpu_count() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def write_table(sweep: Sweep, outcomes: dict[int, dict[str, Any]]) -> pd.DataFrame:
    """sweep.csv: one row per combination, pending ones included; ``rank`` orders the scored ones best first in
    their metric's direction (``cv.metric=log_loss``: lowest first)."""
    table = pd.DataFrame([combo_row(c, outcomes.get(i)) for i, c in enumerate(sweep.combos)])
    keys = pd.Series([metric_key(m, s) if pd.notna(s) else None for m, s in zip(table["metric"], table["cv_score"])],
                     dtype="float64")
    table["rank"] = keys.rank(ascending=False, method="min").astype("Int64")
    sweep.folder.write_table(table)
    return table


def combo_row(combo: Combo, outcome: dict[str, Any] | None) -> dict[str, Any]:
    """A combination's row: its axis values, and what its run folder says (scores, speed, memory, size, status)."""
    row: dict[str, Any] = {**combo.values, "run": "", "status": "pending", "metric": "", "cv_score": None,
                           "cv_score_no_tta": None, "epoch_s": None, "peak_mem_mb": None, "params": None,
                           "wall_s": None, "reason": ""}
    run = Run(outcome["run_dir"]) if outcome and outcome["run_dir"] else find_run(combo.cfg)
    if outcome:
        row.update(status=outcome["status"], reason=outcome["reason"])
    if run is None:
        return row
    row["run"] = run.path.name
    if not outcome:
        row.update(status=run.status, reason=run.info.get("reason", ""))
    if run.status == "done" and run.finished:
        m, folds = run.metrics, run.metrics.get("per_fold", [])
        row.update(metric=m["metric"], cv_score=m["cv_score"], cv_score_no_tta=m.get("cv_score_no_tta"),
                   wall_s=run.info.get("wall_s"))
        row.update(fold_stats(folds))
    return row


def fold_stats(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Seconds per epoch (mean over folds), peak memory (largest fold) and parameters, from the fold summaries."""
    def values(key: str) -> list[float]:
        return [f[key] for f in folds if f.get(key) is not None]

    epoch_s, peak, params = values("epoch_s"), values("peak_mem_mb"), values("params")
    return {"epoch_s": sum(epoch_s) / len(epoch_s) if epoch_s else None, "peak_mem_mb": max(peak) if peak else None,
            "params": int(params[0]) if params else None}
