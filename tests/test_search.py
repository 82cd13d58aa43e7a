"""``podium search``: the space file checked before anything runs, and two processes sharing one SQLite study, each
trial claimed by one of them and trained as its own run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from podium.config import load_config
from podium.errors import PodiumError
from podium.tuning import read_space, train_command

optuna = pytest.importorskip("optuna")
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.mark.parametrize(("space", "message"), [
    ("train.lr: {type: floaty, low: 0.1, high: 1}", "type must be one of float, int, categorical"),
    ("train.lrr: {type: float, low: 0.1, high: 1}", "Unknown config key train.lrr"),
    ("train.lr: {type: float, low: 1, high: 0.1}", "low (1) must be below high"),
    ("model.resize: {type: categorical, choices: [squash, squosh]}", "squosh"),
    ("train.epochs: {type: int, low: 0, high: 3}", "train.epochs"),
    ("train.lr: {type: float, low: 0, high: 1, log: true}", "log range needs low > 0"),
    ("train.lr: [0.1, 1]", "must be a mapping"),
    ("- just a list", "must map config keys"),
])
def test_bad_space_files_are_one_line(tmp_path: Path, space: str, message: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(space + "\n")
    with pytest.raises(PodiumError, match=None) as e:
        read_space(path, load_config())
    assert message in str(e.value) and "\n" not in str(e.value)


def test_best_trial_as_a_train_command() -> None:
    line = train_command("data dir", None, ["train.epochs=3", "train.lr=0.1"], {"train.lr": 0.002})
    assert line == "podium train 'data dir' train.epochs=3 train.lr=0.002"


def test_two_processes_share_one_sqlite_study(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {type: float, low: 0.0001, high: 0.01, log: true}\n"
                     "model.resize: {type: categorical, choices: [squash, crop]}\n")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    args = [sys.executable, "-m", "podium", "search", str(single_dir), "--space", str(space), "--trials", "2",
            "--study", "shared", *tiny]
    procs = [subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out + err
        assert "podium train" in out and "train.lr=" in out
    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{tmp_path / 'runs' / 'optuna.db'}")
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) >= 2
    assert len({t.number for t in trials}) == len(trials)
    run_dirs = [t.user_attrs["run_dir"] for t in trials]
    assert len(set(run_dirs)) == len(trials) and all(Path(d, "metrics.json").is_file() for d in run_dirs)
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both processes ran trials of the one study


def test_a_pruned_trial_stops_after_its_first_epoch(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path) -> None:
    from podium.runs.run import Run
    from podium.tuning import Param, objective

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    trial = study.ask()
    base = load_config(None, [*tiny, "train.epochs=2", "finetune.freeze_epochs=0"])
    with pytest.raises(optuna.TrialPruned, match="after epoch 1 of fold 0"):
        objective(trial, single_dir, base, [Param("train.lr", "float", 1e-3, 1e-2)], "accuracy", "p")
    (run_dir,) = (tmp_path / "runs").glob("p-t0-*")
    run = Run(run_dir)
    assert run.status == "failed" and "TrialPruned" in run.info["reason"] and not run.folds_done()
