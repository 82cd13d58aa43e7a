"""``podium runs``: one leaderboard per data folder and task, each naming its metric; filters; two runs compared."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from podium.config import load_config
from podium.runs.board import compare, leaderboard
from podium.runs.log import record_run
from podium.runs.run import Run


def fake_run(root: Path, data: Path, overrides: list[str], cv: float) -> Run:
    cfg = load_config(None, [f"run.root={root}", *overrides])
    run = Run.create(cfg, data)
    run.start(cfg, data, {"task": "multiclass", "metric": "accuracy", "classes": ["a", "b"]})
    run.write_metrics({"metric": "accuracy", "cv_score": cv, "cv_score_no_tta": cv - 0.01,
                       "overall": {"accuracy": cv, "log_loss": 0.5},
                       "per_fold": [{"epoch_s": 1.5, "peak_mem_mb": 900.0, "params": 1000}]})
    run.set_status("done", cv_score=cv, wall_s=12.0)
    return run


def test_leaderboard_never_ranks_two_datasets_together(tmp_path: Path) -> None:
    for name, data, task, metric, cv in (("a1", "/d/a", "multiclass", "accuracy", 0.7),
                                         ("b1", "/d/b", "multilabel", "mean_auc", 0.95),
                                         ("a2", "/d/a", "multiclass", "accuracy", 0.9),
                                         ("b2", "/d/b", "multilabel", "mean_auc", 0.5)):
        record_run(tmp_path, {"run_dir": f"/r/{name}", "name": name, "status": "done", "data_dir": data,
                              "task": task, "metric": metric, "cv_score": cv, "started": "2026-01-01"})
    groups = leaderboard(tmp_path)
    assert [(g["data_dir"], g["metric"], [r["name"] for r in g["rows"]]) for g in groups] == [
        ("/d/b", "mean_auc", ["b1", "b2"]), ("/d/a", "accuracy", ["a2", "a1"])]
    assert [r["name"] for g in leaderboard(tmp_path, data="/d/a") for r in g["rows"]] == ["a2", "a1"]
    assert [g["task"] for g in leaderboard(tmp_path, task="multilabel")] == ["multilabel"]
    assert leaderboard(tmp_path, task="ordinal") == []


def test_runs_command_names_the_metric_and_compares(tmp_path: Path, single_dir: Path, capsys: pytest.CaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from podium.cli import main

    root = tmp_path / "runs"
    a = fake_run(root, single_dir, ["model.name=resnet18", "train.lr=0.001"], 0.8)
    b = fake_run(root, single_dir, ["model.name=resnet34", "train.lr=0.001"], 0.9)
    diff = compare(a.path, b.path)
    assert diff["config"] == [("model.name", "resnet18", "resnet34")]  # run.name and run.root are the same here
    numbers = {k: (va, vb) for k, va, vb in diff["numbers"]}
    assert numbers["cv accuracy"] == (0.8, 0.9) and numbers["params"] == (1000, 1000)

    monkeypatch.setattr(sys, "argv", ["podium", "runs", "--root", str(root), "--data", str(single_dir)])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "cv accuracy" in out and "cv = accuracy" in out and out.index(b.path.name) < out.index(a.path.name)
    monkeypatch.setattr(sys, "argv", ["podium", "runs", "--compare", str(a.path), str(b.path)])
    with pytest.raises(SystemExit):
        main()
    out = capsys.readouterr().out
    assert "model.name" in out and "resnet34" in out and "train.lr" not in out


def test_a_pruned_run_is_shown_pruned_and_never_ensembled(tmp_path: Path, single_dir: Path,
                                                          capsys: pytest.CaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from podium.cli import main
    from podium.multirun.ensemble import top_runs

    root = tmp_path / "runs"
    a = fake_run(root, single_dir, ["model.name=resnet18"], 0.8)
    b = fake_run(root, single_dir, ["model.name=resnet34"], 0.7)
    pruned = fake_run(root, single_dir, ["model.name=resnet50"], 0.95)
    pruned.set_status("pruned", reason="pruned after epoch 1 of fold 0 (accuracy 0.9500)")  # a score of its own
    assert pruned.status == "pruned" and Run(pruned.path).info["reason"].startswith("pruned after epoch 1")

    monkeypatch.setattr(sys, "argv", ["podium", "runs", "--root", str(root)])
    with pytest.raises(SystemExit):
        main()
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if pruned.path.name[:20] in line)
    assert "pruned" in row
    assert [r.path for r in top_runs(3, single_dir, [], root)] == [a.path, b.path]  # only done runs
