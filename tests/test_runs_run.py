"""The run folder's owner (podium.runs): oof.csv's columns made by the Run from arrays, every prediction file name
from one rule, and the sweep folder's files written by ``SweepFolder`` alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from podium.runs.predictions import prediction_file
from podium.runs.run import OofRows, Run
from podium.runs.sweeps import SweepFolder
from podium.tasks.task import get_task


def test_oof_columns_come_from_the_run_for_every_task(tmp_path: Path) -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    run = Run(tmp_path / "r")
    run.write_oof(OofRows(["a", "b"], np.array([0, 1]), np.array([0, 2]), probs, get_task("multiclass"),
                          ["x", "y", "z"]))
    table = run.oof
    assert list(table.columns) == ["id", "fold", "label", "x", "y", "z"]
    assert table["label"].tolist() == ["x", "z"] and np.allclose(table[["x", "y", "z"]].to_numpy(), probs)
    run.write_oof(OofRows(["a", "b"], np.array([0, 1]), np.array([0, 2]), probs, get_task("ordinal"),
                          ["x", "y", "z"], source=np.array(["train", "train"])))
    table = run.oof
    assert list(table.columns) == ["id", "fold", "source", "label", "x", "y", "z", "score"]  # the expected grade
    assert table["score"].tolist() == pytest.approx([0.4, 1.5])
    run.write_oof(OofRows(["a", "b"], np.array([0, 1]), np.array([[1, 0, 1], [0, 0, 0]]), probs,
                          get_task("multilabel"), ["x", "y", "z"]))
    assert run.oof["label"].fillna("").tolist() == ["x z", ""]
    run.write_oof(run.oof.iloc[::-1])  # a table read back is written as it is
    assert run.oof["id"].tolist() == ["b", "a"]
    with pytest.raises(ValueError, match="fold"):
        run.write_oof(pd.DataFrame({"id": ["a"], "x": [1.0]}))


def test_every_prediction_file_name_comes_from_one_rule(tmp_path: Path) -> None:
    run = Run(tmp_path)
    assert [prediction_file(), prediction_file(folds=True), prediction_file("pool"), prediction_file("pool", True)] \
        == ["test_predictions.csv", "test_predictions_folds.csv", "predictions-pool.csv", "predictions-pool-folds.csv"]
    assert run.test_predictions_path == run.predictions_path() == tmp_path / "test_predictions.csv"
    assert run.predictions_path("pool", folds=True) == tmp_path / "predictions-pool-folds.csv"


def test_the_sweep_folder_writes_its_description_and_table(tmp_path: Path) -> None:
    folder = SweepFolder.at(tmp_path / "runs", "s")
    assert folder.path == (tmp_path / "runs" / "sweeps" / "s").resolve() and folder.name == "s"
    folder.write_plan(tmp_path / "data", {"model.img_size": ["32", "48"]}, ["s-32", "s-48"], storage="sqlite:///x",
                      study="sweep-s")
    plan = json.loads((folder.path / "sweep.json").read_text())
    assert list(plan) == ["data_dir", "axes", "storage", "study", "runs"] and plan["runs"] == ["s-32", "s-48"]
    assert folder.write_table(pd.DataFrame({"run": ["s-32"], "status": ["done"]})) == folder.table_path
    assert pd.read_csv(folder.table_path)["status"].tolist() == ["done"]


def test_a_run_folder_travels_as_bytes_and_lands_whole(tmp_path: Path) -> None:
    from podium.core.errors import PodiumError
    from podium.runs.run import experiment_log

    source = Run(tmp_path / "node" / "r-20261207-101500")  # a Ray task's run on another machine
    (source.path / "fold0").mkdir(parents=True)
    (source.path / "run.json").write_text(json.dumps({"status": "done", "data_dir": "/data", "task": "multiclass",
                                                      "metric": "accuracy", "cv_score": 0.5, "started": "now"}))
    (source.path / "fold0" / "best.pt").write_bytes(bytes(range(256)) * 4)
    archive = source.archive()
    here = Run.unpack(archive, tmp_path / "driver")
    assert here.path == (tmp_path / "driver" / source.path.name).resolve() and here.status == "done"
    for name in ("run.json", "fold0/best.pt"):
        assert (here.path / name).read_bytes() == (source.path / name).read_bytes()
    assert [r["name"] for r in experiment_log(tmp_path / "driver")] == [source.path.name]  # the driver's log has it
    assert [p.name for p in (tmp_path / "driver").iterdir() if p.name.startswith(".")] == []  # no half-unpacked copy
    with pytest.raises(PodiumError, match="already exists"):
        Run.unpack(archive, tmp_path / "driver")
