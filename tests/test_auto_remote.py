"""``podium auto --ray`` on a local Ray started once for this module (2 CPUs, no dashboard): each planned run is a
task whose epochs reach the driver's epoch hook while it trains, the probe's timings and cache keys come from the
node's task, a failed run is one line, and without Ray installed ``--ray`` is one line naming the extra."""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import datagen
import podium
from podium.config import merge
from podium.core.errors import Interrupted, PodiumError
from podium.engine.timing import StepTiming
from podium.multirun.auto.execute import Session
from podium.multirun.auto.ladder import LADDERS, Candidate
from podium.multirun.auto.probe import machine_key
from podium.multirun.auto.remote import NodeProbe, RemoteTrainer, auto_on_ray
from podium.multirun.fanout import RayOptions, TaskPool, ray_options
from podium.runs.auto import AutoFolder
from podium.runs.run import Run

ray = pytest.importorskip("ray")
HERE = Path(__file__).resolve().parent
LADDER = (Candidate("test_resnet", 32), Candidate("test_efficientnet", 32))


def scripted_timer(cfg, comp) -> StepTiming:
    """The probe's timer, run in the node's task: a fixed timing per model (no measuring), and the process that ran
    it noted beside the runs root (so the test can tell it was not the driver)."""
    (Path(cfg.run.root).parent / f"timed-{cfg.model.name}").write_text(str(os.getpid()))
    cost = {"test_resnet": 0.004, "test_efficientnet": 0.008}[cfg.model.name]
    return StepTiming(cost, cost / 4, 0.001, 0.5)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One Ray for the module; its workers import podium from this checkout and this module (the scripted timer)."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE.parent / "src"), str(HERE), saved or ""])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    if saved is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = saved


@pytest.fixture
def tiny_ladder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The CPU ladder replaced by timm's tiny test models, the probe's cache under tmp_path (the driver's)."""
    monkeypatch.setenv("PODIUM_CACHE", str(tmp_path / "cache"))
    saved = LADDERS.unregister("cpu")
    LADDERS.register("cpu")(LADDER)
    yield
    LADDERS.unregister("cpu")
    LADDERS.register("cpu")(saved)


@pytest.fixture
def no_training_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """``pipeline.train`` fails in the driver's process: whatever trains must train in a Ray task."""
    import podium.pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("trained on the driver, not in a Ray task")

    monkeypatch.setattr(podium.pipeline, "train", refuse)


def test_a_planned_run_is_a_task_whose_epochs_reach_the_driver(local_ray: None, no_training_here: None,
                                                               single_dir: Path, tmp_path: Path) -> None:
    cfg = podium.make_config(None, [*datagen.TINY, "train.epochs=2", f"run.root={tmp_path / 'runs'}",
                                    "run.name=auto-run-1"])
    seen: list[tuple[int, int, int]] = []
    with TaskPool(RayOptions(retries=0), single_dir) as pool:
        trainer = RemoteTrainer(pool, NodeProbe(pool), print)
        run = trainer(single_dir, cfg, lambda fold, row: seen.append((fold, row["epoch"], os.getpid())))
        trainer.close()
    assert [(f, e) for f, e, _ in seen] == [(0, 1), (0, 2), (1, 1), (1, 2)]  # every epoch, in order, here
    assert {pid for *_, pid in seen} == {os.getpid()}
    assert run.status == "done" and run.path.parent == tmp_path / "runs" and run.path.name.startswith("auto-run-1-")
    assert run.info["pid"] != os.getpid()  # trained by a worker process


def test_a_failed_run_is_one_line(local_ray: None, single_dir: Path, tmp_path: Path) -> None:
    cfg = merge(podium.make_config(None, [*datagen.TINY, f"run.root={tmp_path / 'runs'}", "run.name=auto-bad"]),
                ["model.name=no_such_net"])
    with TaskPool(RayOptions(retries=0), single_dir) as pool, pytest.raises(PodiumError) as e:
        RemoteTrainer(pool, NodeProbe(pool), print)(single_dir, cfg, lambda fold, row: None)
    message = str(e.value)
    assert message.startswith("auto-bad failed on Ray: ") and "no_such_net" in message and "\n" not in message


def test_auto_on_ray_trains_each_run_as_a_task_and_replans_on_the_driver(
        local_ray: None, tiny_ladder: None, no_training_here: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    replans: list[str] = []
    real_replan = Session.replan

    def replan(self: Session, started: int, current_left: float, why: str) -> None:
        replans.append(why)
        real_replan(self, started, current_left, why)

    monkeypatch.setattr(Session, "replan", replan)
    data = datagen.csv_single(tmp_path / "single")
    runs_root = tmp_path / "runs"
    # train.threads=0: each task's torch threads are its cores (the key says 1, the driver's config 0)
    base = podium.make_config(None, [*datagen.TINY, "train.threads=0", f"run.root={runs_root}"])
    final = auto_on_ray(data, 40, base, ray_options(True, retries=0), timer=scripted_timer)
    summary = AutoFolder(next(runs_root.glob("auto-single-*"))).summary
    trained = [s for s in summary["steps"] if s["kind"] in ("run", "pseudo")]
    assert trained and summary["final"] == str(final.path)
    for step in trained:  # every run a finished folder under the driver's runs root, trained by a worker
        run = Run(step["folder"])
        assert run.path.parent == runs_root and run.status == "done" and run.info["pid"] != os.getpid()
    for step in (s for s in trained if s["kind"] == "run"):  # each epoch re-planned the later runs, on the driver
        epochs = int(step["note"].rsplit(", ", 1)[1].split()[0])
        hooks = [w for w in replans if w.startswith(f"{step['name']} fold ")]
        assert 1 <= len(hooks) <= epochs * summary["folds"], (step, replans)
    cached = json.loads((tmp_path / "cache" / "auto" / "timings.json").read_text())
    key = next(k for k in cached if k.endswith("|test_resnet@32")).split("|")
    assert key[0] == platform.node()  # the node's name (this machine: the local Ray runs here)
    assert key[7] == "1" and machine_key(base, LADDER[0], 2).split("|")[7] == "0"  # the task's threads, not ours
    assert int((tmp_path / "timed-test_resnet").read_text()) != os.getpid()  # the timer ran in the node's task


def test_auto_ray_without_ray_is_one_line_naming_the_extra(cli, single_dir: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the extra
    code, err = cli("auto", str(single_dir), "--budget", "1m", "--ray", *datagen.TINY, f"run.root={tmp_path / 'r'}")
    assert code == 2 and "--ray needs Ray" in err and "[ray]" in err and len(err.strip().splitlines()) == 1, err
    code, err = cli("auto", str(single_dir), "--budget", "1m", "--ray", "local", "--gpus-per-task", "-1")
    assert code == 2 and "--gpus-per-task must be 0 or more" in err
    assert not (tmp_path / "r").exists()


def test_dry_run_on_ray_measures_on_the_node_and_trains_nothing(local_ray: None, tiny_ladder: None,
                                                                 no_training_here: None, single_dir: Path,
                                                                 tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    plan = podium.auto(single_dir, "3m", None, [*datagen.TINY, f"run.root={runs}"], dry_run=True, ray="local",
                       retries=0)
    assert plan["runs"] and plan["predicted_end_s"] <= 180
    assert not runs.exists() or not any(runs.iterdir())  # no run, no auto folder
    cached = json.loads((tmp_path / "cache" / "auto" / "timings.json").read_text())
    assert any(k.startswith(f"{platform.node()}|") and k.endswith("|test_resnet@32") for k in cached)


def test_ctrl_c_while_a_run_trains_cancels_its_task_and_leaves_it_resumable(local_ray: None, single_dir: Path,
                                                                            tmp_path: Path) -> None:
    cfg = podium.make_config(None, [*datagen.TINY, "train.epochs=20", f"run.root={tmp_path / 'runs'}",
                                    "run.name=auto-cut"])

    def ctrl_c(fold: int, row: dict) -> None:  # Ctrl-C on the driver, as the first epoch comes back
        raise KeyboardInterrupt

    with pytest.raises(Interrupted), TaskPool(RayOptions(retries=0), single_dir) as pool:
        RemoteTrainer(pool, NodeProbe(pool), print)(single_dir, cfg, ctrl_c)
    (run,) = [Run(p) for p in (tmp_path / "runs").glob("auto-cut-*/") if Run.is_run(p)]
    assert run.status == "interrupted" and run.info["reason"] == "SIGINT"


def test_a_run_whose_worker_dies_is_retried_and_resumes(local_ray: None, single_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from podium.multirun.auto import remote
    from ray_faults import auto_run_dies_once_in_fold_1

    marker = tmp_path / "killed"
    monkeypatch.setattr(remote, "node_train", functools.partial(auto_run_dies_once_in_fold_1, str(marker)))
    cfg = podium.make_config(None, [*datagen.TINY, f"run.root={tmp_path / 'runs'}", "run.name=auto-killed"])
    seen: list[tuple[int, int]] = []
    with TaskPool(RayOptions(retries=1), single_dir) as pool:
        trainer = RemoteTrainer(pool, NodeProbe(pool), print)
        run = trainer(single_dir, cfg, lambda fold, row: seen.append((fold, row["epoch"])))
    assert marker.exists() and run.status == "done" and run.folds_done() == [0, 1]
    # the retry resumed the run its first attempt left: fold 0 was not trained again, and came back once
    assert (run.path / "fold0" / "done.json").stat().st_mtime_ns == int(marker.read_text())
    assert seen == [(0, 1), (1, 1)]
    assert len([p for p in (tmp_path / "runs").iterdir() if Run.is_run(p)]) == 1
