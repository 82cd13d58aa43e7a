"""``--ray``: folds, sweep points and search trials as Ray tasks on a local Ray started once for this module (2 CPUs,
no dashboard): a 3-fold run equals the serial run byte for byte, a sweep's table equals ``--jobs 1``'s, a task whose
worker is killed is retried and resumes its run, a node without the data folder is one line, and without Ray
installed ``--ray`` is one line naming the extra."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import datagen
import podium
from podium.config import PodiumConfig, merge, to_dict
from podium.core.errors import Interrupted
from podium.multirun.fanout import RayOptions, TaskPool
from podium.multirun.sweep import run_combination
from podium.runs.run import Run
from ray_faults import dies_once_in_fold_1

ray = pytest.importorskip("ray")
HERE = Path(__file__).resolve().parent
FILES = ("oof.csv", "decisions.json", "test_predictions.csv", "submission.csv", "folds.csv")
SAME = ["model.name", "train.lr", "status", "metric", "cv_score", "cv_score_no_tta", "params", "rank", "reason"]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One Ray for the module; its workers import podium from this checkout and the tests' task bodies."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE.parent / "src"), str(HERE), saved or ""])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    if saved is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = saved


def test_three_folds_on_ray_equal_the_serial_run(local_ray: None, tmp_path: Path) -> None:
    data = datagen.csv_single(tmp_path / "comp")
    base = [*datagen.TINY, "cv.folds=3", f"run.root={tmp_path / 'runs'}"]
    single = podium.train(data, overrides=[*base, "run.name=single"])
    fanned = podium.train(data, overrides=[*base, "run.name=fanned"], ray=True, retries=0)
    assert fanned.status == "done" and fanned.folds_done() == [0, 1, 2] and fanned.path.name.startswith("fanned-")
    for name in FILES:
        assert (fanned.path / name).read_bytes() == (single.path / name).read_bytes(), name
    parts = sorted(p.name.rsplit("-", 2)[0] for p in (tmp_path / "runs").glob("fanned-part*"))
    assert parts == ["fanned-part0", "fanned-part1", "fanned-part2"]


def test_a_sweep_on_ray_gives_the_table_of_jobs_1(local_ray: None, single_dir: Path, tiny: tuple[str, ...]) -> None:
    grid = ["model.name=no_such_net,test_resnet", "train.lr=0.001,0.003"]
    serial = podium.sweep(single_dir, grid, overrides=tiny, name="serial")
    fanned = podium.sweep(single_dir, grid, overrides=tiny, name="fanned", ray="local")
    assert fanned["status"].tolist() == ["failed", "failed", "done", "done"]  # a failed point blocks no other
    assert "no_such_net" in fanned["reason"].iloc[0] and len(fanned["reason"].iloc[0].splitlines()) == 1
    pd.testing.assert_frame_equal(fanned[SAME], serial[SAME])
    saved = pd.read_csv(Path(fanned.attrs["path"]), keep_default_na=False)
    runs_root = Path(fanned.attrs["folder"]).parents[1]
    assert saved["run"].tolist() == fanned["run"].tolist()
    assert all(Run.is_run(runs_root / r) for r in saved["run"] if r)


def test_a_killed_worker_is_retried_and_its_run_resumes(local_ray: None, single_dir: Path, tiny: tuple[str, ...],
                                                        tmp_path: Path) -> None:
    marker = tmp_path / "killed"
    cfg = merge(PodiumConfig(), [*tiny, "run.name=killed"])
    with TaskPool(RayOptions(retries=1), single_dir) as pool:
        pool.submit("only", dies_once_in_fold_1, str(marker), str(single_dir), to_dict(cfg), 1)
        key, outcome = pool.next_done()
    assert key == "only" and outcome["status"] == "done", outcome
    run = Run(outcome["run_dir"])
    assert marker.exists() and run.status == "done" and run.folds_done() == [0, 1]
    # the retry found the run interrupted and resumed it: fold 0, finished before the kill, was not trained again
    assert (run.path / "fold0" / "done.json").stat().st_mtime_ns == int(marker.read_text())


def test_a_node_without_the_data_folder_is_one_line(local_ray: None, tiny: tuple[str, ...], tmp_path: Path) -> None:
    missing = tmp_path / "not-on-this-node"
    with TaskPool(RayOptions(retries=0), missing) as pool:
        pool.submit(0, run_combination, str(missing), to_dict(merge(PodiumConfig(), list(tiny))), 1)
        _, outcome = pool.next_done()
    reason = outcome["reason"]
    assert outcome["status"] == "failed" and outcome["run_dir"] == ""
    assert reason.startswith("Ray node ") and str(missing) in reason and "same path" in reason, reason
    assert len(reason.splitlines()) == 1


def test_ray_missing_is_one_line_naming_the_extra(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path, cli,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the extra
    code, err = cli("train", str(single_dir), "--ray", *tiny)
    assert code == 2 and "--ray needs Ray" in err and "[ray]" in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_ray_without_an_address_is_local(single_dir: Path, tiny: tuple[str, ...], cli) -> None:
    from podium.cli import ray_flag

    assert ray_flag(["train", "d", "--ray", "train.lr=0.1"]) == ["train", "d", "--ray", "local", "train.lr=0.1"]
    assert ray_flag(["train", "--ray", "d"]) == ["train", "--ray", "local", "d"]
    assert ray_flag(["sweep", "d", "--ray", "head:6379"]) == ["sweep", "d", "--ray", "head:6379"]
    assert ray_flag(["sweep", "d", "--ray"]) == ["sweep", "d", "--ray", "local"]
    code, err = cli("train", str(single_dir), *tiny, "--ray", "local", "--cpus-per-task", "0")
    assert code == 2 and "--cpus-per-task must be above 0" in err
    code, err = cli("sweep", str(single_dir), "--grid", "train.lr=0.1,0.2", "--storage", "sqlite:///x.db", "--ray",
                    *tiny)
    assert code == 2 and "not both" in err


def test_search_on_ray_asks_and_tells_on_the_driver(local_ray: None, single_dir: Path, tiny: tuple[str, ...],
                                                    tmp_path: Path) -> None:
    import optuna

    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {type: float, low: 0.0001, high: 0.01, log: true}\n"
                     "model.name: {type: categorical, choices: [test_resnet, no_such_net]}\n")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="r", storage=url, direction="maximize")
    study.enqueue_trial({"train.lr": 0.001, "model.name": "no_such_net"})  # the first two trials known in advance
    study.enqueue_trial({"train.lr": 0.002, "model.name": "test_resnet"})
    best = podium.search(single_dir, space, trials=3, overrides=tiny, storage=url, study="r", ray=True)
    study = optuna.load_study(study_name="r", storage=url)
    assert len(study.trials) == 3 and all(t.state.is_finished() for t in study.trials)
    for t in study.trials:  # each trial's run trained by a task; a failing one told failed with its reason
        if t.params["model.name"] == "no_such_net":
            assert t.state.name == "FAIL" and "no_such_net" in t.user_attrs["reason"]
        else:
            assert t.state.name == "COMPLETE" and Run(t.user_attrs["run_dir"]).metrics["cv_score"] == t.value
    assert best["run_dir"] and best["params"]["model.name"] == "test_resnet"


def test_ctrl_c_on_the_driver_cancels_the_tasks_and_leaves_resumable_runs(local_ray: None, single_dir: Path,
                                                                          tiny: tuple[str, ...],
                                                                          tmp_path: Path) -> None:
    cfg = merge(PodiumConfig(), [*tiny, "train.epochs=20", "run.name=cancelled"])
    with pytest.raises(Interrupted), TaskPool(RayOptions(retries=0), single_dir) as pool:
        pool.submit(0, run_combination, str(single_dir), to_dict(cfg), 1)
        deadline = time.time() + 300
        while not any(Run(p).status == "running" for p in (tmp_path / "runs").glob("cancelled-*/")
                      if Run.is_run(p)) and time.time() < deadline:
            time.sleep(0.5)
        raise KeyboardInterrupt  # as Ctrl-C would, while the driver waits for its tasks
    (run,) = [Run(p) for p in (tmp_path / "runs").glob("cancelled-*/") if Run.is_run(p)]
    assert run.status == "interrupted" and run.info["reason"] == "SIGINT"  # `podium resume` continues it
