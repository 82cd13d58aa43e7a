"""``podium auto --ray``: the probe and every planned run of ``podium auto`` as Ray tasks; the plan, the clock, the
re-planning, the blend and the summary stay on the driver.

    NodeProbe      the probe where the training runs: each candidate's cache key (``probe.machine_key``) and timing
                   computed by a task holding a training task's CPUs and GPUs, all on one node (the first task's),
                   so the plan is made from that node's speed and its cache keys name that node, not the driver
    RemoteTrainer  the ``Trainer`` of ``session.auto``: each planned run one task of ``fanout.TaskPool`` (the data
                   folder checked on its node, the run folder brought back through ``Run.unpack`` when the driver
                   cannot see it), pinned to the probe's node; each epoch's (fold, row) streamed back through a Ray
                   queue while the task trains, and handed to the session's epoch hook on the driver, so the later
                   runs are re-planned after every epoch as without Ray
    auto_on_ray    ``session.auto`` with both, inside one ``TaskPool``: Ctrl-C cancels the run under way (its run
                   marks itself interrupted); a failed run stops the auto run with the task's one-line reason

The runs stay sequential, one task at a time: the plan's clock adds run after run, and its re-planning reads the
epochs of the one run under way. A worker that dies is retried (``--retries``) on the same node, resuming its run
from the last finished epoch. The pseudo-label run learns from a folder on the driver; a node that cannot see that
folder (no shared runs root) hands it back, and the driver trains it itself.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podium.config import PodiumConfig, from_dict, merge, to_dict
from podium.core.console import Reporter
from podium.core.errors import PodiumError
from podium.data.folders.ingest import Competition
from podium.engine.accel import resolve_device
from podium.engine.fold import EpochHook
from podium.engine.timing import StepTiming
from podium.multirun.auto.clock import Clock
from podium.multirun.auto.inference import InferenceLimit
from podium.multirun.auto.ladder import Candidate
from podium.multirun.auto.probe import Timer, machine_key, measure
from podium.multirun.auto.session import auto, pipeline_trainer
from podium.multirun.fanout import RayOptions, TaskPool
from podium.multirun.sweep import find_run
from podium.runs.run import Run

WAIT_S = 0.25  # how often the driver hands streamed epochs to the session while a run's task trains
NO_SOURCE = "no-source"  # a node that cannot see the pseudo-label source folder: the driver trains that run


def with_threads(raw_cfg: dict[str, Any], threads: int) -> PodiumConfig:
    """A config sent from the driver, with the task's torch threads (the cores it holds) unless the user set them:
    what a training task runs with, so the probe measures the same."""
    cfg = from_dict(raw_cfg)
    return merge(cfg, [f"train.threads={threads}"]) if threads and cfg.train.threads == 0 else cfg


def node_device(raw_cfg: dict[str, Any]) -> dict[str, Any]:
    """Task body: the device a run of ``raw_cfg`` trains on here (``cuda`` when the task was given a GPU)."""
    return {"device": resolve_device(from_dict(raw_cfg).train.device)}


def node_key(raw_cfg: dict[str, Any], candidate: Candidate, outputs: int, threads: int) -> dict[str, Any]:
    """Task body: the timing cache key of ``candidate`` on this node (its name, cores, GPU, torch, threads)."""
    return {"key": machine_key(with_threads(raw_cfg, threads), candidate, outputs)}


def node_timing(raw_cfg: dict[str, Any], comp: Competition, threads: int, timer: Timer) -> dict[str, Any]:
    """Task body: ``timer`` (``probe.measure``) of the candidate ``raw_cfg`` names, on this node."""
    return {"timing": dataclasses.asdict(timer(with_threads(raw_cfg, threads), comp))}


def node_train(data_dir: str, raw_cfg: dict[str, Any], threads: int, epochs: Any) -> dict[str, Any]:
    """Task body: ``pipeline.train`` of one planned run, each epoch's (fold, row) put into ``epochs`` (the driver's
    Ray queue). A retry of this task (its worker died) resumes the run its first attempt left interrupted."""
    from podium.pipeline import train

    cfg = with_threads(raw_cfg, threads)
    if cfg.data.pseudo and not Path(cfg.data.pseudo).exists():
        return {"run_dir": "", "status": NO_SOURCE, "reason": f"this node cannot see {cfg.data.pseudo}"}
    import ray

    # Ray keeps a task's id across its retries: the marker tells a retry from a first attempt, so an interrupted
    # run left by an earlier, unrelated auto call of the same names is never resumed
    marker = Path(tempfile.gettempdir()) / "podium-auto-tasks" / ray.get_runtime_context().get_task_id()
    retry = marker.exists()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    run = find_run(cfg) if retry else None
    try:
        if run is not None and run.status == "interrupted":
            run = train(None, resume=run, on_epoch=lambda fold, row: epochs.put((fold, row)))
        else:
            run = train(Path(data_dir), cfg, on_epoch=lambda fold, row: epochs.put((fold, row)))
    finally:
        marker.unlink(missing_ok=True)
    return {"run_dir": str(run.path), "status": "done", "reason": ""}


class NodeProbe:
    """The probe of ``auto --ray`` on the node that trains: ``key`` and ``time`` (``probe_ladder``'s ``key_of`` and
    ``timer``) each a task with a training task's resources, pinned to the node the first one ran on.

    The timing cache stays on the driver (podium's cache folder there): the driver makes the plan, so a cached
    candidate costs it no task beyond its key, the file outlives the cluster's nodes (a cloud worker's disk goes with
    it), and since every key names the node that measured it, timings of several nodes share the file unmixed."""

    def __init__(self, pool: TaskPool, timer: Timer = measure) -> None:
        self.pool, self.timer = pool, timer
        self.node, self.host, self.device = "", "", ""

    def run(self, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
        """``fn(*args)`` as a task on the probe's node (any node for the first); a failure is its one-line reason."""
        self.pool.submit("probe", fn, *args, node=self.node)
        _, outcome = self.pool.next_done()
        if outcome.get("status") == "failed":
            raise PodiumError(outcome["reason"])
        self.node, self.host = outcome["node"], outcome["host"]
        return outcome

    def find_device(self, base: PodiumConfig) -> str:
        """The device the node's tasks train on (``cuda`` when a task is given a GPU), not the driver's; this first
        task also picks the node and checks the data folder there."""
        if not self.device:
            self.device = self.run(node_device, to_dict(base))["device"]
        return self.device

    def key(self, cfg: PodiumConfig, candidate: Candidate, outputs: int) -> str:
        """``probe.machine_key`` computed on the node."""
        return self.run(node_key, to_dict(cfg), candidate, outputs, self.pool.options.threads)["key"]

    def time(self, cfg: PodiumConfig, comp: Competition) -> StepTiming:
        """The candidate's timing measured on the node."""
        outcome = self.run(node_timing, to_dict(cfg), comp, self.pool.options.threads, self.timer)
        return StepTiming(**outcome["timing"])


class RemoteTrainer:
    """``session.auto``'s ``Trainer`` on Ray: one task per planned run, on the probe's node, its epochs streamed back
    to the session's epoch hook while it trains; returns the run, whose folder is under the driver's runs root."""

    def __init__(self, pool: TaskPool, probe: NodeProbe, say: Callable[[str], None]) -> None:
        from ray.util.queue import Queue

        self.pool, self.probe, self.say = pool, probe, say
        self.epochs = Queue(actor_options={"num_cpus": 0})  # holds no core a training task needs

    def __call__(self, data_dir: Path, cfg: PodiumConfig, on_epoch: EpochHook) -> Run:
        """Train ``cfg`` as a task and wait for it, handing each streamed epoch to ``on_epoch`` here."""
        # an absolute runs root: a worker's current folder is not the driver's
        cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, root=str(Path(cfg.run.root).expanduser()
                                                                                   .resolve())))
        self.pool.submit(cfg.run.name, node_train, str(data_dir), to_dict(cfg), self.pool.options.threads,
                         self.epochs, node=self.probe.node)
        while not self.pool.ray.wait(list(self.pool.pending), num_returns=1, timeout=WAIT_S)[0]:
            self.drain(on_epoch)
        self.drain(on_epoch)  # the task has put every epoch before it returned
        _, outcome = self.pool.next_done()
        if outcome["status"] == NO_SOURCE:
            self.say(f"{cfg.run.name} trains on the driver: {outcome['reason']}")
            return pipeline_trainer(data_dir, cfg, on_epoch)
        if outcome["status"] != "done":
            raise PodiumError(f"{cfg.run.name} failed on Ray: {outcome['reason'] or outcome['status']}")
        return Run(outcome["run_dir"])

    def close(self) -> None:
        """End the epochs' queue (its actor)."""
        self.epochs.shutdown()

    def drain(self, on_epoch: EpochHook) -> None:
        """Hand the epochs streamed so far to ``on_epoch``, in the order they were trained."""
        waiting = self.epochs.qsize()
        if waiting:
            for fold, row in self.epochs.get_nowait_batch(waiting):
                on_epoch(fold, row)


def auto_on_ray(data_dir: str | Path, budget_s: float, base: PodiumConfig, options: RayOptions, dry_run: bool = False,
                ladder: str = "", clock: Clock | None = None, start: float | None = None,
                inference: InferenceLimit = InferenceLimit(), timer: Timer = measure,
                say: Callable[[str], None] | None = None) -> Run | dict[str, Any]:
    """``session.auto`` with the probe and each planned run as Ray tasks (``options``: ``fanout.ray_options``);
    ``timer``: what the probe's task measures with (``probe.measure``; a script in tests)."""
    data_dir = Path(data_dir).expanduser().resolve()
    if not data_dir.is_dir():
        raise PodiumError(f"Data folder {data_dir} does not exist.")
    say = say or Reporter().print
    pool = TaskPool(options, data_dir)
    probe = NodeProbe(pool, timer)
    trainer = RemoteTrainer(pool, probe, say)
    try:
        with pool:  # Ctrl-C: the run's task is cancelled (its run marked interrupted) while its queue still takes
            device = probe.find_device(base)
            say(f"Ray: probe and runs on node {probe.host} ({device}; {options.cpus:g} CPUs, {pool.gpus:g} GPUs per "
                "task)")
            return auto(data_dir, budget_s, base, dry_run, ladder, clock, probe.time, trainer, say, start, inference,
                        probe.key, device)
    finally:
        trainer.close()
