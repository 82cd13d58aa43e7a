"""``podium search``: the space file, the storage URL and the data checked before anything is written, two
processes (or ``--jobs 2``) sharing one SQLite study, each trial claimed by one of them and trained as its own run,
and a pruned trial's run marked pruned."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from podium.config import load_config
from podium.core.errors import PodiumError
from podium.multirun.ensemble import open_member
from podium.multirun.search import read_space, train_command
from podium.runs.run import experiment_log

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
    from podium.multirun.search import Param, objective
    from podium.runs.run import Run

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    trial = study.ask()
    base = load_config(None, [*tiny, "train.epochs=2", "finetune.freeze_epochs=0"])
    with pytest.raises(optuna.TrialPruned, match="after epoch 1 of fold 0"):
        objective(trial, single_dir, base, [Param("train.lr", "float", 1e-3, 1e-2)], "accuracy", "p")
    (run_dir,) = (tmp_path / "runs").glob("p-t0-*")
    run = Run(run_dir)
    assert run.status == "pruned" and run.info["reason"].startswith("pruned after epoch 1") and not run.folds_done()
    (row,) = experiment_log(tmp_path / "runs")
    assert row["status"] == "pruned"  # what `podium runs` shows
    with pytest.raises(PodiumError, match=r"not a finished run \(status pruned\)"):
        open_member(run_dir)  # an ensemble never takes it (--top only takes done runs: tests/test_runs_board.py)


def test_fresh_sqlite_storage_opened_by_many_processes_at_once(tmp_path: Path) -> None:
    """Optuna creates its tables when it first opens a storage; processes doing that together on a fresh SQLite file
    collided ("table ... already exists") until the lock beside the file serialised them."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.time() + 8  # every process opens the storage at the same moment, after its imports
    script = ("import time, optuna; from podium.multirun.search import open_study; "
              f"time.sleep(max(0, {start} - time.time())); "
              f"open_study(optuna, 'sqlite:///{tmp_path / 'runs' / 'optuna.db'}', 's', create=True)")
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(errors)
    assert (tmp_path / "runs" / "optuna.db.lock").is_file()
    assert [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 'runs' / 'optuna.db'}")] \
        == ["s"]


def test_user_input_errors_exit_2_before_any_storage(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path,
                                                     cli) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {type: float, low: 0.0001, high: 0.01, log: true}\n")
    bad_space = tmp_path / "bad.yaml"
    bad_space.write_text("train.lrr: {type: float, low: 0.1, high: 1}\n")
    cases = {
        "too many folds": (["--space", str(space), *tiny, "cv.folds=20"], "cv.folds=20"),
        "bad space": (["--space", str(bad_space), *tiny], "Unknown config key train.lrr"),
        "unknown database": (["--space", str(space), "--storage", "foo://bar", *tiny], "--storage 'foo://bar'"),
        "not a URL": (["--space", str(space), "--storage", "optuna.db", *tiny], "sqlite:///"),
        "unknown driver": (["--space", str(space), "--storage", "mysql+nosuchdriver://u@h/db", *tiny], "--storage"),
        # psycopg2 missing, or no server on port 1: either way one line naming the storage
        "unreachable": (["--space", str(space), "--storage", "postgresql://u@127.0.0.1:1/db", *tiny], "--storage"),
        "no jobs": (["--space", str(space), "--jobs", "0", *tiny], "--jobs must be at least 1"),
    }
    for what, (args, message) in cases.items():
        code, err = cli("search", str(single_dir), *args)
        assert code == 2 and err.startswith("error:") and message in err, (what, err)
        assert len(err.strip().splitlines()) == 1, (what, err)
    assert not (tmp_path / "runs").exists()  # no optuna.db, no run folder


def test_jobs_run_trials_in_parallel_processes(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path) -> None:
    import podium

    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {type: float, low: 0.0001, high: 0.01, log: true}\n")
    best = podium.search(single_dir, space, trials=2, overrides=tiny, study="j", jobs=2)
    study = optuna.load_study(study_name="j", storage=best["storage"])
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == len(study.trials) == 2
    assert len({t.params["train.lr"] for t in trials}) == 2
    pids = {t.user_attrs["pid"] for t in trials}
    assert len(pids) == 2 and os.getpid() not in pids  # one trial in each worker process
    assert best["run_dir"] in {t.user_attrs["run_dir"] for t in trials}


def test_a_trial_failing_on_a_user_error_is_logged_in_one_line() -> None:
    import io
    import logging

    from podium.multirun.search import quiet_optuna

    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)  # like Optuna's own handler on its root logger
    logging.getLogger("optuna").addHandler(handler)
    try:
        quiet_optuna(optuna)
        logger = optuna.logging.get_logger("optuna.study._optimize")  # where Optuna logs a failed trial
        for error in (PodiumError("cv.folds=20 is too many"), ValueError("a bug")):
            try:
                raise error
            except Exception:
                logger.warning(f"Trial 0 failed because of the following error: {error!r}.", exc_info=True)
    finally:
        logging.getLogger("optuna").removeHandler(handler)
    text = buffer.getvalue()
    assert "cv.folds=20 is too many" in text and text.count("Traceback") == 1 and "ValueError: a bug" in text


class _Denied:
    """A lock file in a folder the user cannot write (tests run as root, where chmod denies nothing)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def acquire(self) -> None:
        raise PermissionError(13, "Permission denied", self.path)


def test_a_storage_the_user_cannot_lock_is_one_line(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path,
                                                    cli, monkeypatch: pytest.MonkeyPatch) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {type: float, low: 0.0001, high: 0.01, log: true}\n")
    (tmp_path / "taken" / "optuna.db.lock").mkdir(parents=True)  # a folder where the lock file goes
    code, err = cli("search", str(single_dir), "--space", str(space), "--storage",
                    f"sqlite:///{tmp_path / 'taken' / 'optuna.db'}", *tiny)
    assert code == 2 and "Cannot lock the study storage" in err and "Is a directory" in err, err
    assert len(err.strip().splitlines()) == 1, err
    monkeypatch.setattr("podium.multirun.search.FileLock", _Denied)
    code, err = cli("search", str(single_dir), "--space", str(space), "--storage",
                    f"sqlite:///{tmp_path / 'locked' / 'optuna.db'}", *tiny)
    assert code == 2 and "Permission denied" in err and "folder you can write" in err, err
    assert len(err.strip().splitlines()) == 1, err
