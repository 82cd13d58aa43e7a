"""``podium sweep --storage URL``: one grid shared by several processes or machines through an Optuna RDB storage.

    open_grid     the study ``sweep-<sweep name>`` in the storage (the one ``podium search`` uses: SQLite file,
                  PostgreSQL, MySQL); its creator enqueues one waiting trial per combination (the grid is kept in the
                  study's user attributes, and a later call with another grid for the same name is refused). A call
                  that finds a combination failed, with nothing queued or running for it, queues it again.
    work          the queue: a worker takes a waiting trial with Optuna's public ``study.ask()`` (which pops enqueued
                  trials, WAITING -> RUNNING), trains the combination as ``podium sweep`` does
                  (``sweep.run_combination``), keeps the outcome and the scores in the trial's user attributes and
                  tells the study; a failed combination is queued again up to ``retries`` times. On SQLite the ask is
                  made under the storage's file lock (``search.storage_lock``): SQLite has no ``SELECT ... FOR
                  UPDATE``, so without it two processes can both read a trial as waiting and both claim it; a server
                  database locks the row. Each combination is claimed by exactly one worker at a time, so it runs
                  once (plus its retries).
    shared_table  the sweep table read from the storage: each combination's latest trial (status, scores, speed,
                  memory, run folder, host), so any machine prints the whole grid without seeing the others' disks.

Why not ``optuna.samplers.GridSampler``: it counts a failed trial as visited (no retry), and once every grid point
has started it hands a running point to the next worker, which would train it a second time; Optuna's queue of
enqueued trials gives each point to one worker. A worker killed mid-run leaves its trial RUNNING (Optuna's heartbeat
runs only inside ``study.optimize``): the same command run again on that machine finds the claim's process gone
(host and pid are kept in the trial), tells it failed and queues it again, and ``run_combination`` resumes the
interrupted run folder. Only Optuna's public API is used (``ask``, ``tell``, ``enqueue_trial``, user attributes).

Why the claim was once flaky (two processes on one SQLite file, one exiting 1 with ``UpdateFinishedTrialError``):
it read the waiting trials, then set each one RUNNING through the storage. A combination that fails in milliseconds
(``model.name=no_such_net``) was claimed, failed and told by the other process between that read and the claim, so
the claim hit a finished trial and raised; and SQLite ignores ``FOR UPDATE``, so both could also claim one trial.
``study.ask`` skips trials finished meanwhile, and the file lock makes look-and-ask one step per machine.
"""

from __future__ import annotations

import os
import socket
from contextlib import nullcontext
from typing import Any

import pandas as pd

from podium.config import to_dict
from podium.core.errors import PodiumError
from podium.multirun.search import check_storage_url, optuna_module, quiet_optuna, storage_lock
from podium.multirun.sweep import Sweep, combo_row, in_processes, run_combination, worker_threads
from podium.runs.files import alive

ROW_KEYS = ("run", "status", "metric", "cv_score", "cv_score_no_tta", "epoch_s", "peak_mem_mb", "params", "wall_s",
            "reason")


def study_name(sweep: Sweep) -> str:
    """The study that holds ``sweep``'s grid."""
    return f"sweep-{sweep.folder.name}"


def open_grid(optuna: Any, url: str, sweep: Sweep) -> Any:
    """The sweep's study, created with one waiting trial per combination, or loaded (its grid must be the same);
    failed combinations with nothing queued or running are queued again."""
    from sqlalchemy.exc import DBAPIError

    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        with storage_lock(url):  # SQLite: the first process creates and fills the queue while the others wait
            storage = optuna.storages.RDBStorage(url, engine_kwargs=engine)
            study, created = create_or_load(optuna, storage, sweep)
            if created or "grid" not in study.user_attrs:
                fill_queue(study, sweep)
            elif study.user_attrs["grid"] != sweep.runs:
                raise PodiumError(f"The storage {url} holds sweep {sweep.folder.name} with another grid; give the "
                                  "sweep another --name.")
            else:
                requeue_failed(optuna, study, sweep)
    except ImportError as e:  # the database's driver (psycopg2, PyMySQL, ...) is not installed
        raise PodiumError(f"--storage {url}: {str(e).splitlines()[0]} (its Python driver is missing).") from None
    except DBAPIError as e:
        raise PodiumError(f"Cannot open the sweep storage {url} ({str(e.orig or e).splitlines()[0]}).") from None
    return study


def create_or_load(optuna: Any, storage: Any, sweep: Sweep) -> tuple[Any, bool]:
    """The sweep's study in ``storage`` and whether this call created it."""
    try:
        return optuna.create_study(study_name=study_name(sweep), storage=storage, direction="maximize"), True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=study_name(sweep), storage=storage), False


def fill_queue(study: Any, sweep: Sweep) -> None:
    """One waiting trial for every combination that has none, then the grid kept in the study (its mark of being
    filled: a creator killed before this line leaves a study that the next call fills)."""
    for i in range(len(sweep.combos)):
        if not trials_of(study, i):
            enqueue(study, sweep, i, 1)
    study.set_user_attr("grid", sweep.runs)


def requeue_failed(optuna: Any, study: Any, sweep: Sweep) -> None:
    """Each combination whose latest trial failed, or was claimed by a process of this machine that is gone (then
    told failed first), queued again as its next attempt."""
    for i in range(len(sweep.combos)):
        latest = trials_of(study, i)[-1]
        if stale(latest):  # its worker on this machine is gone: failed, and queued again below
            study.tell(latest.number, state=optuna.trial.TrialState.FAIL)
            latest = trials_of(study, i)[-1]
        if latest.state == optuna.trial.TrialState.FAIL:
            enqueue(study, sweep, i, latest.user_attrs.get("attempt", 1) + 1)


def stale(trial: Any) -> bool:
    """A RUNNING trial claimed by a process of this machine that no longer exists (killed, or the machine rebooted)."""
    return (trial.state.name == "RUNNING" and trial.user_attrs.get("host") == socket.gethostname()
            and not alive(trial.user_attrs.get("pid")))


def enqueue(study: Any, sweep: Sweep, index: int, attempt: int) -> None:
    """Queue combination ``index`` (its ``attempt``-th try)."""
    study.enqueue_trial(sweep.combos[index].values, user_attrs={"combo": index, "attempt": attempt})


def trials_of(study: Any, index: int) -> list[Any]:
    """The trials of combination ``index``, oldest first."""
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("combo") == index]


def claim(optuna: Any, study: Any, url: str = "") -> Any | None:
    """A waiting trial, now RUNNING and ours (``study.ask`` pops the queue, under ``url``'s lock on SQLite), or None
    when the queue is empty. A trial asked for when another machine took the last waiting one between our look and
    our ask holds no combination: it is told failed and ignored."""
    with storage_lock(url) if url else nullcontext():
        if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
            return None
        trial = study.ask()
    if "combo" not in trial.user_attrs:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return None
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    return trial


def work(sweep: Sweep, url: str, threads: int = 0, retries: int = 1) -> int:
    """Claim and train combinations until the queue is empty; return how many this worker trained."""
    optuna = optuna_module()
    quiet_optuna(optuna)
    study = open_grid(optuna, url, sweep)
    done = 0
    while (trial := claim(optuna, study, url)) is not None:
        index, attempt = trial.user_attrs["combo"], trial.user_attrs["attempt"]
        combo = sweep.combos[index]
        outcome = run_combination(str(sweep.data_dir), to_dict(combo.cfg), threads)
        row = combo_row(combo, outcome)
        for key in ROW_KEYS:
            value = row.get(key)
            trial.set_user_attr(key, None if pd.isna(value) else value)
        score = row.get("cv_score")
        if outcome["status"] == "done" and score is not None and not pd.isna(score):
            study.tell(trial, float(score))
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            if attempt <= retries:
                enqueue(study, sweep, index, attempt + 1)
        done += 1
    return done


def shared_table(study: Any, sweep: Sweep) -> pd.DataFrame:
    """One row per combination from its latest trial in the storage: axis values, status, scores, speed, memory,
    attempts, host."""
    states = {"COMPLETE": "done", "FAIL": "failed", "RUNNING": "running", "WAITING": "pending"}
    rows = []
    for i, combo in enumerate(sweep.combos):
        trials = trials_of(study, i)
        row: dict[str, Any] = {**combo.values, **dict.fromkeys(ROW_KEYS), "attempts": 0, "host": ""}
        row.update(status="pending", reason="", run="", metric="")
        if trials:
            last = trials[-1]
            row.update({k: last.user_attrs[k] for k in (*ROW_KEYS, "host") if k in last.user_attrs})
            row["status"] = states.get(last.state.name, last.state.name.lower())
            row["attempts"] = sum(t.state.is_finished() for t in trials)
        rows.append(row)
    return pd.DataFrame(rows)


def run_shared_sweep(sweep: Sweep, storage: str, threads: int = 0, retries: int = 1) -> pd.DataFrame:
    """Work on the grid shared through ``storage`` (with ``sweep.jobs`` processes here), then return the table read
    from the storage (also written to sweep.csv in the sweep folder on this machine)."""
    check_storage_url(storage)
    if retries < 0:
        raise PodiumError(f"--retries must be 0 or more, got {retries}.")
    optuna = optuna_module()
    quiet_optuna(optuna)
    study = open_grid(optuna, storage, sweep)  # created (and queued) here, before any worker starts
    if sweep.jobs == 1:
        work(sweep, storage, threads, retries)
    else:
        per = worker_threads(sweep.jobs, threads)
        calls = [(sweep, storage, per, retries)] * sweep.jobs  # the study exists: the workers only load it
        for _, future in in_processes(work, calls, sweep.jobs):
            future.result()
    table = shared_table(study, sweep)
    sweep.folder.write_plan(sweep.data_dir, sweep.axes, sweep.runs, storage=storage, study=study_name(sweep))
    sweep.folder.write_table(table)
    return table

