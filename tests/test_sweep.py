"""Sweeps: every combination an ordinary run, a table read back from the run folders, a failing combination recorded
and skipped, an interrupted sweep continued by running it again, and bad axes refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import podium
import podium.pipeline
from podium.core.errors import Interrupted
from podium.runs.run import Run


def test_failing_combination_is_recorded_and_the_sweep_goes_on(single_dir: Path, tiny: tuple[str, ...],
                                                               tmp_path: Path) -> None:
    table = podium.sweep(single_dir, ["model.name=no_such_net,test_resnet"], overrides=tiny, name="s")
    assert table["model.name"].tolist() == ["no_such_net", "test_resnet"]
    bad, good = table.iloc[0], table.iloc[1]
    assert bad["status"] == "failed" and "no_such_net" in bad["reason"] and len(bad["reason"].splitlines()) == 1
    assert good["status"] == "done" and good["metric"] == "accuracy" and 0 <= good["cv_score"] <= 1
    assert good["epoch_s"] > 0 and good["peak_mem_mb"] > 0 and good["params"] > 0 and good["wall_s"] > 0
    assert 0 <= good["cv_score_no_tta"] <= 1
    run = Run(tmp_path / "runs" / good["run"])
    assert run.status == "done" and run.config.run.name == "s-test_resnet"
    assert all(f["params"] == good["params"] for f in run.metrics["per_fold"])
    saved = pd.read_csv(tmp_path / "runs" / "sweeps" / "s" / "sweep.csv")
    assert saved["status"].tolist() == ["failed", "done"]


def test_interrupted_sweep_continues_where_it_stopped(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real = podium.pipeline.fit_fold

    def stop_in_second_fold_1(fold: int, comp, folds, cfg, *args, **kwargs):
        if cfg.train.lr == 0.002 and fold == 1:
            raise KeyboardInterrupt
        return real(fold, comp, folds, cfg, *args, **kwargs)

    grid = ["train.lr=0.001,0.002,0.003"]
    monkeypatch.setattr(podium.pipeline, "fit_fold", stop_in_second_fold_1)
    with pytest.raises(Interrupted):
        podium.sweep(single_dir, grid, overrides=tiny)
    (folder,) = (tmp_path / "runs" / "sweeps").iterdir()
    first = pd.read_csv(folder / "sweep.csv")
    assert first["status"].tolist() == ["done", "interrupted", "pending"]
    one, two = (tmp_path / "runs" / name for name in first["run"][:2])
    stamps = {p: p.stat().st_mtime_ns for p in (one / "metrics.json", two / "fold0" / "done.json")}

    monkeypatch.setattr(podium.pipeline, "fit_fold", real)
    table = podium.sweep(single_dir, grid, overrides=tiny)
    assert table["status"].tolist() == ["done", "done", "done"]
    assert table["run"].tolist()[:2] == [one.name, two.name]  # the same run folders: skipped, resumed
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # the finished run and fold were not redone
    assert len([p for p in (tmp_path / "runs").iterdir() if (p / "run.json").is_file()]) == 3


def test_bad_axes_exit_2_before_anything_runs(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path,
                                              cli) -> None:
    cases = {
        "model.nme=a,b": "Unknown config key model.nme",
        "model.img_size=": "empty value",
        "model.img_size=32,": "empty value",
        "train.epochs=1,0": "train.epochs",
        "model.resize=squash,squosh": "squosh",
        "run.name=a,b": "cannot be swept",
    }
    for axis, message in cases.items():
        code, err = cli("sweep", str(single_dir), "--grid", axis, *tiny)
        assert code == 2 and err.startswith("error:") and message in err, (axis, err)
        assert len(err.strip().splitlines()) == 1
    code, err = cli("sweep", str(single_dir), *tiny)
    assert code == 2 and "at least one --grid" in err
    assert not (tmp_path / "runs").exists()


def test_a_data_level_mistake_stops_the_sweep_in_one_line(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path,
                                                          cli) -> None:
    # every combination would fail the same way (too many folds for the data): one line, nothing written
    code, err = cli("sweep", str(single_dir), "--grid", "train.lr=0.001,0.002", *tiny, "cv.folds=20")
    assert code == 2 and err.startswith("error:") and "cv.folds=20" in err and len(err.strip().splitlines()) == 1
    code, err = cli("sweep", str(single_dir), "--grid", "model.name=no_such_net,no_such_net2", *tiny)
    assert code == 2 and "no_such_net" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_a_sweep_where_every_combination_fails_exits_1(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path,
                                                       cli, monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(podium.pipeline, "fit_fold", out_of_memory)
    code, err = cli("sweep", str(single_dir), "--grid", "train.lr=0.001,0.002", "--name", "oom", *tiny)
    assert code == 1 and "every combination of the sweep failed" in err
    table = pd.read_csv(tmp_path / "runs" / "sweeps" / "oom" / "sweep.csv")
    assert table["status"].tolist() == ["failed", "failed"]
    assert table["reason"].tolist() == ["RuntimeError: CUDA out of memory"] * 2


def test_each_worker_process_sees_one_gpu_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing
    import os

    import torch

    from podium.multirun.sweep import take_gpu, visible_gpus

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert visible_gpus() == []  # no CUDA: nothing to pin, the workers keep the environment as it is
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpus() == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # the user's own choice of GPUs is what is shared out
    assert visible_gpus() == ["3", "5"]
    gpus = multiprocessing.get_context("spawn").Queue()
    gpus.put("5")
    take_gpu(gpus)  # a worker process's initializer: its one GPU
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    take_gpu(gpus, wait=0.1)  # the queue is empty (a worker replacing one that died): left as it is
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"
