"""Exact resume and the run's lifecycle, through real processes.

A training process killed in the middle of an epoch (SIGKILL, then SIGTERM right after resuming: twice in a row) and
resumed ends with the same OOF predictions, metrics, logs and best weights as an uninterrupted run, bit for bit
(CPU, one thread, deterministic kernels). Dropout and one loader worker are on, so the global random generators and
the prepared loader's epoch both matter.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import datagen
from podium.runs.run import Run

SRC = str(Path(__file__).resolve().parents[1] / "src")
SETTINGS = (*datagen.TINY, "train.epochs=4", "train.batch_size=8", "train.num_workers=1", "model.drop_rate=0.3",
            "aug.batch=mixup,cutmix", "train.sampler=sqrt",
            "aug.ops=random_resized_crop,hflip,color")
TIMING = ("train_s", "images_per_s", "wall_s")  # wall-clock columns, the only ones allowed to differ


def start(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "podium", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out + err


def state_epoch(path: Path) -> int:
    try:
        return torch.load(path, weights_only=True)["epoch"]
    except Exception:  # noqa: BLE001 - not there yet, or being replaced
        return -1


def kill_mid_epoch(proc: subprocess.Popen, last: Path, epochs_done: int, seconds: float, sig: int) -> None:
    """Send ``sig`` ``seconds`` after ``last`` says ``epochs_done`` epochs are finished (i.e. during the next one)."""
    deadline = time.time() + 300
    while state_epoch(last) < epochs_done:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.time() < deadline
        time.sleep(0.02)
    time.sleep(seconds)
    proc.send_signal(sig)


def run_folder(proc: subprocess.Popen, root: Path, name: str) -> Path:
    """The folder of the run ``name`` that ``proc`` is creating under ``root``, once it exists."""
    deadline = time.time() + 300
    while not list(root.glob(f"{name}-*")):
        assert time.time() < deadline and proc.poll() is None, "the run folder never appeared"
        time.sleep(0.02)
    (path,) = root.glob(f"{name}-*")
    return path


def comparable(run: Path) -> dict:
    """Everything a run decided and predicted, without wall-clock numbers."""
    metrics = json.loads((run / "metrics.json").read_text())
    for fold in metrics["per_fold"]:
        for measured in ("train_s", "epoch_s", "peak_mem_mb", "cache_s", "epochs_wall_s"):  # measured, not decided
            fold.pop(measured)
    logs = {k: pd.read_csv(run / f"fold{k}" / "log.csv").drop(columns=list(TIMING)).to_dict("list") for k in (0, 1)}
    return {"oof": (run / "oof.csv").read_text(), "submission": (run / "submission.csv").read_text(),
            "metrics": metrics, "logs": logs, "decisions": (run / "decisions.json").read_text()}


def assert_same_weights(a: Path, b: Path) -> None:
    for k in (0, 1):
        wa, wb = Run(a).load_best(k).state_dict, Run(b).load_best(k).state_dict
        assert all(torch.equal(wa[n], wb[n]) for n in wa), f"fold {k} weights differ"


def test_killed_twice_mid_epoch_resumes_to_identical_results(tmp_path: Path) -> None:
    data = datagen.csv_single(tmp_path / "data", n=160, n_test=6)
    code, log = finish(start("train", str(data), *SETTINGS, "run.name=plain", cwd=tmp_path))
    assert code == 0, log
    (plain,) = (tmp_path / "runs").glob("plain-*")
    epoch_s = float(pd.read_csv(plain / "fold0" / "log.csv")["train_s"].median())

    proc = start("train", str(data), *SETTINGS, "run.name=killed", cwd=tmp_path)
    killed = run_folder(proc, tmp_path / "runs", "killed")
    kill_mid_epoch(proc, killed / "fold0" / "last.pt", 1, epoch_s / 2, signal.SIGKILL)
    code, _ = finish(proc)
    assert code == -signal.SIGKILL
    assert Run.open(killed).status == "interrupted"  # its process is gone, whatever run.json last said
    first = state_epoch(killed / "fold0" / "last.pt")
    assert 1 <= first < 3, first

    proc = start("resume", str(killed), cwd=tmp_path)  # and SIGTERM in the middle of the next epoch
    kill_mid_epoch(proc, killed / "fold0" / "last.pt", first + 1, epoch_s / 2, signal.SIGTERM)
    code, log = finish(proc)
    assert code == 128 + signal.SIGTERM, log
    assert f"fold 0: resuming after epoch {first}" in log, log
    assert f"podium resume {killed}" in log and "Traceback" not in log, log
    info = json.loads((killed / "run.json").read_text())
    assert (info["status"], info["reason"]) == ("interrupted", "SIGTERM")

    # Each signal is sent half an epoch after an epoch was saved; on a loaded machine it may land an epoch later, which
    # is why there are 4 epochs: each resume must start after whatever epoch the saved state says, still in fold 0.
    saved = state_epoch(killed / "fold0" / "last.pt")
    assert first < saved < 4, saved
    code, log = finish(start("resume", str(killed), cwd=tmp_path))
    assert code == 0, log
    assert f"fold 0: resuming after epoch {saved}" in log, log
    assert comparable(killed) == comparable(plain)
    assert_same_weights(killed, plain)
    assert json.loads((killed / "run.json").read_text())["status"] == "done"


def test_ctrl_c_marks_the_run_interrupted_and_says_how_to_resume(tmp_path: Path) -> None:
    data = datagen.csv_single(tmp_path / "data", n=160, n_test=6)
    proc = start("train", str(data), *SETTINGS, "run.name=ctrlc", cwd=tmp_path)
    run = run_folder(proc, tmp_path / "runs", "ctrlc")
    kill_mid_epoch(proc, run / "fold0" / "last.pt", 1, 0.05, signal.SIGINT)
    code, log = finish(proc)
    assert code == 130 and f"continue with `podium resume {run}`" in log and "Traceback" not in log, log
    assert Run.open(run).status == "interrupted" and Run.open(run).info["reason"] == "SIGINT"
    listed = subprocess.run([sys.executable, "-m", "podium", "runs", "--root", str(tmp_path / "runs")],
                            env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True)
    assert "interrupted" in listed.stdout


def test_a_crash_marks_the_run_failed_with_its_reason(single_dir: Path, tiny: tuple[str, ...],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import podium.engine.fold as fold_module
    from podium.config import PodiumConfig, merge
    from podium.pipeline import train
    from podium.runs.log import list_runs

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore details")

    monkeypatch.setattr(fold_module, "train_one_epoch", broken)
    cfg = merge(PodiumConfig(), [*tiny, "run.name=crash"])
    with pytest.raises(RuntimeError):
        train(single_dir, cfg)
    (run_dir,) = Path(cfg.run.root).glob("crash-*")
    run = Run.open(run_dir)
    assert run.status == "failed" and run.info["reason"] == "RuntimeError: CUDA error: an illegal memory access " \
                                                            "was encountered"
    (row,) = list_runs(cfg.run.root)
    assert row["status"] == "failed"


def test_resume_from_elsewhere_uses_the_runs_own_root_and_a_damaged_state_restarts_the_fold(
        single_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import podium.engine.fold as fold_module
    from podium.config import PodiumConfig, merge
    from podium.core.errors import Interrupted
    from podium.pipeline import train
    from podium.runs.log import list_runs

    settings = (*datagen.TINY, "train.epochs=2", "run.root=relative-runs")
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir(), elsewhere.mkdir()
    monkeypatch.chdir(here)
    plain = train(single_dir, merge(PodiumConfig(), [*settings, "run.name=plain"]))
    real, calls = fold_module.train_one_epoch, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # during fold 1's second epoch
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(fold_module, "train_one_epoch", interrupted)
    with pytest.raises(Interrupted):
        train(single_dir, merge(PodiumConfig(), [*settings, "run.name=again"]))
    monkeypatch.setattr(fold_module, "train_one_epoch", real)
    (run_dir,) = (here / "relative-runs").glob("again-*")
    (run_dir / "fold1" / "last.pt").write_bytes(b"")  # a 0-byte state, as a full disk leaves behind

    monkeypatch.chdir(elsewhere)
    run = train(None, resume=run_dir)
    assert "fold1/last.pt cannot be read as a podium resume state (it is empty). Fold 1 restarts from its first " \
           "epoch." in run.log_path.read_text()
    assert not (elsewhere / "relative-runs").exists()
    rows = {r["name"]: r["status"] for r in list_runs(here / "relative-runs")}
    assert rows == {plain.path.name: "done", run.path.name: "done"}
    assert run.oof.drop(columns="id").equals(plain.oof.drop(columns="id"))
