"""``--ray``: folds, sweep points and search trials as Ray tasks, on this machine or on a cluster.

    RayOptions   where (``address``: ``local`` starts Ray here with every core, ``auto`` or ``HOST:PORT`` joins a
                 cluster), what each task holds (``cpus``; ``gpus``: 0.25 packs four tasks on one GPU, and Ray gives
                 each task only its own GPU through ``CUDA_VISIBLE_DEVICES``) and how often a task whose worker died
                 is started again (``retries``)
    TaskPool     the tasks in flight: each runs ``fn(*args)`` after checking that the data folder is on its node (a
                 node without it fails the task with one line naming the node and the path); a finished task's run
                 folder comes back to the driver when the driver cannot see it (no shared filesystem: it travels as
                 a tar.gz through Ray's object store and lands under the driver's runs root through ``Run.unpack``);
                 Ctrl-C cancels the tasks, whose runs mark themselves interrupted (resumable)
    run_configs  the fan-out of run configs: each trained, resumed or skipped by ``sweep.run_combination`` in a task.
                 ``podium sweep --ray`` and ``train --ray`` go through it; so can any list of planned runs
    train_folds  ``train --ray``: each fold a part (``cv.train_folds=k``), then ``podium merge`` of the parts, so the
                 run equals a serial one byte for byte (OOF, decisions, submission)
    search_trials  ``search --ray``: Optuna's ask-and-tell on the driver, each trial's run a task

A retried task finds its run folder interrupted (its worker's process is gone) and resumes it from the last saved
epoch when the folder is on storage the new worker sees (a shared runs root, or the same node); otherwise it starts
the run again. A task failing on its own (a bad value, out of memory) is not retried: its run is marked failed with
its reason, and the other tasks go on.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from podium.config import PodiumConfig, merge, to_dict
from podium.core.errors import Interrupted, PodiumError, install_hint
from podium.multirun.sweep import cpu_count, find_run, run_combination
from podium.runs.run import Run
from podium.validation import validate

LOCAL = "local"


@dataclass(frozen=True)
class RayOptions:
    """Where the tasks run and what each holds (``gpus`` None: one GPU per task when the cluster has GPUs)."""

    address: str = LOCAL
    cpus: float = 1.0
    gpus: float | None = None
    retries: int = 2

    @property
    def threads(self) -> int:
        """Torch threads of each task's run: the cores it holds."""
        return max(1, int(self.cpus))


def ray_options(ray: str | bool | None, cpus: float = 1.0, gpus: float | None = None,
                retries: int = 2) -> RayOptions | None:
    """The checked ``--ray`` options, or None without ``ray`` (``True`` or ``local``: Ray on this machine)."""
    if ray is None or ray is False or ray == "":
        return None
    address = LOCAL if ray is True else str(ray).strip()
    if "=" in address:  # `--ray train.epochs=3`: the option took an override as its address
        raise PodiumError(f"--ray took {address!r} as the cluster address; put --ray after the overrides, or write "
                          "--ray local.")
    if cpus <= 0:
        raise PodiumError(f"--cpus-per-task must be above 0, got {cpus}.")
    if gpus is not None and gpus < 0:
        raise PodiumError(f"--gpus-per-task must be 0 or more, got {gpus}.")
    if retries < 0:
        raise PodiumError(f"--retries must be 0 or more, got {retries}.")
    return RayOptions(address, float(cpus), gpus, retries)


def ray_module() -> Any:
    """Ray, or a one-line error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise PodiumError(f"--ray needs Ray: {install_hint('ray')}.") from None
    return ray


def connect(options: RayOptions) -> Any:
    """Ray, started here (``local``: every core of this machine) or joined to the cluster at ``options.address``;
    a Ray already started in this process (a notebook's, a test's) is used as it is."""
    ray = ray_module()
    if ray.is_initialized():
        return ray
    try:
        if options.address == LOCAL:
            ray.init(num_cpus=cpu_count(), include_dashboard=False)
        else:
            ray.init(address=options.address)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise PodiumError(f"--ray {options.address}: cannot join a Ray cluster there ({str(e).splitlines()[0]}); "
                          "start one with `ray start --head` on that machine.") from None
    return ray


def on_node(fn: Callable[..., dict[str, Any]], args: tuple[Any, ...], data_dir: str) -> dict[str, Any]:
    """The body of every task: the data folder checked on this node, then ``fn(*args)`` with the node named in its
    outcome (the driver fetches the run folder from there)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    if not Path(data_dir).is_dir():
        raise PodiumError(f"Ray node {socket.gethostname()} ({ray.util.get_node_ip_address()}) has no data folder "
                          f"{data_dir}; every node needs the data at the same path.")
    return {**fn(*args), "node": node, "host": socket.gethostname()}


def archive_run(run_dir: str) -> bytes:
    """A run folder as tar.gz bytes (a task pinned to the node that holds it)."""
    return Run(run_dir).archive()


class TaskPool:
    """Ray tasks in flight, each keyed by its caller (a combination's index, a trial); used as a context manager
    that cancels the tasks left when the driver stops (Ctrl-C: their runs are marked interrupted)."""

    def __init__(self, options: RayOptions, data_dir: str | Path) -> None:
        self.ray = connect(options)
        gpus = options.gpus if options.gpus is not None else (1.0 if self.ray.cluster_resources().get("GPU") else 0.0)
        self.options, self.gpus, self.data_dir = options, gpus, str(data_dir)
        self.remote = self.ray.remote(on_node).options(num_cpus=options.cpus, num_gpus=gpus,
                                                       max_retries=options.retries, retry_exceptions=False)
        self.pending: dict[Any, Any] = {}

    @property
    def slots(self) -> int:
        """How many tasks the cluster runs at once with each task's CPUs and GPUs."""
        total = self.ray.cluster_resources()
        fits = [total.get("CPU", 1.0) / self.options.cpus] + ([total.get("GPU", 0.0) / self.gpus] if self.gpus else [])
        return max(1, int(min(fits)))

    def submit(self, key: Any, fn: Callable[..., dict[str, Any]], *args: Any, node: str = "") -> None:
        """Start ``fn(*args)`` as a task (``node``: on that Ray node only, with the same resources)."""
        remote = self.remote
        if node:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            remote = self.ray.remote(on_node).options(
                num_cpus=self.options.cpus, num_gpus=self.gpus, max_retries=self.options.retries,
                retry_exceptions=False, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
        self.pending[remote.remote(fn, args, self.data_dir)] = key

    def next_done(self) -> tuple[Any, dict[str, Any]]:
        """The next task to finish: its key and outcome ({run_dir, status, reason, ...}; a task that raised or whose
        worker died past its retries is ``failed`` with the error's first line), its run folder now here."""
        (ref,), _ = self.ray.wait(list(self.pending), num_returns=1)
        key = self.pending.pop(ref)
        try:
            outcome = self.ray.get(ref)
            self.bring_back(outcome)
        except self.ray.exceptions.RayTaskError as e:  # the task raised: its own error, not Ray's wrapper
            cause = e.cause if e.cause is not None else e
            text = str(cause) if isinstance(cause, PodiumError) else f"{type(cause).__name__}: {cause}"
            return key, failed(text)
        except self.ray.exceptions.RayError as e:  # its worker or node died (after the retries), out of memory
            return key, failed(f"{type(e).__name__}: {e}")
        return key, outcome

    def bring_back(self, outcome: dict[str, Any]) -> None:
        """The task's run folder, copied here from its node when this machine cannot see it (no shared runs root)."""
        run_dir = outcome.get("run_dir")
        if not run_dir or Run.is_run(run_dir):
            return
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        fetch = self.ray.remote(archive_run).options(
            num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(outcome["node"], soft=False))
        Run.unpack(self.ray.get(fetch.remote(run_dir)), Path(run_dir).parent)

    def __enter__(self) -> TaskPool:
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: Any) -> None:
        if not self.pending:
            return
        for ref in self.pending:  # a KeyboardInterrupt inside each task: its run saves and marks itself interrupted
            self.ray.cancel(ref)
        self.ray.wait(list(self.pending), num_returns=len(self.pending), timeout=120)
        if kind is KeyboardInterrupt:
            raise Interrupted(None, signal.SIGINT) from None


def failed(reason: str) -> dict[str, Any]:
    """A task's outcome when it did not come back: no run folder, its error's first line."""
    return {"run_dir": "", "status": "failed", "reason": (reason.strip().splitlines() or [""])[0][:300]}


def run_configs(data_dir: str | Path, cfgs: list[PodiumConfig], options: RayOptions
                ) -> Iterator[tuple[int, dict[str, Any]]]:
    """Train every run config as a Ray task (``sweep.run_combination``: a finished run skipped, an interrupted one
    resumed); yield (index, outcome) as each finishes, its run folder under the driver's runs root. Runs already
    finished here are not sent out (a node without the driver's runs root would train them again)."""
    with TaskPool(options, data_dir) as pool:
        for i, cfg in enumerate(cfgs):
            # an absolute runs root: a worker's current folder is not the driver's
            cfg = replace(cfg, run=replace(cfg.run, root=str(Path(cfg.run.root).expanduser().resolve())))
            run = find_run(cfg)
            if run is not None and run.status == "done":
                yield i, {"run_dir": str(run.path), "status": "done", "reason": ""}
            else:
                pool.submit(i, run_combination, str(data_dir), to_dict(cfg), options.threads)
        while pool.pending:
            yield pool.next_done()


def train_folds(data_dir: str | Path, cfg: PodiumConfig, options: RayOptions) -> Run:
    """``train --ray``: every fold a part run (``<name>-part<k>``, ``cv.train_folds=k``) trained as a task, then
    the parts merged as ``podium merge`` does into ``<name>-<timestamp>``. A failed part is reported with its reason
    once the others have ended (the same command skips the finished parts and resumes the interrupted ones); every
    check of the input runs here first."""
    from podium.multirun.merge import merge as merge_parts
    from podium.pipeline import plan_run

    plan = plan_run(data_dir, cfg, None)  # a user's mistake: one line, before any task or folder
    name = cfg.run.name or f"{plan.data_dir.name}-{cfg.model.name}"
    parts = [validate(merge(cfg, [f"cv.train_folds={k}", f"run.name={name}-part{k}", "run.report=false"]))
             for k in plan.todo] if len(plan.todo) > 1 else [cfg]
    outcomes = dict(run_configs(plan.data_dir, parts, options))  # every part ends before a failure is reported
    for i in sorted(outcomes):
        if outcomes[i]["status"] != "done":
            raise PodiumError(f"Fold {plan.todo[i]} failed on Ray: {outcomes[i]['reason'] or outcomes[i]['status']}")
    if len(parts) == 1:
        return Run(outcomes[0]["run_dir"])
    out = Run.create(cfg, plan.data_dir)  # an empty folder, named as a serial run's
    return merge_parts([outcomes[i]["run_dir"] for i in sorted(outcomes)], out.path)


def search_trials(study: Any, data_dir: Path, base: PodiumConfig, params: list[Any], n_trials: int,
                  options: RayOptions) -> None:
    """``n_trials`` trials of ``study``, each a task: the driver asks Optuna for a trial (``study.ask``), trains its
    values as a run on the cluster and tells the study the run's CV score (or a failure); as many trials run at
    once as the cluster has room for. Trials are not pruned (their epochs run on other machines)."""
    import optuna

    from podium.multirun.search import suggest

    with TaskPool(options, data_dir) as pool:
        asked = 0
        while asked < n_trials or pool.pending:
            while asked < n_trials and len(pool.pending) < pool.slots:
                trial = study.ask()
                values = {p.key: suggest(trial, p) for p in params}
                cfg = validate(merge(base, [*(f"{k}={v}" for k, v in values.items()),
                                            f"run.name={study.study_name}-t{trial.number}"]))
                pool.submit(trial, run_combination, str(data_dir), to_dict(cfg), options.threads)
                asked += 1
            trial, outcome = pool.next_done()
            run = Run(outcome["run_dir"]) if outcome["run_dir"] else None
            if outcome["status"] == "done" and run is not None and run.finished:
                trial.set_user_attr("run_dir", str(run.path))
                study.tell(trial, float(run.metrics["cv_score"]))
            else:
                trial.set_user_attr("reason", outcome["reason"])
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
