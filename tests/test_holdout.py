"""Holdout and partial runs (cv.train_folds): scored on the rows they validated, ranked only with runs scored on the
same rows, blended with runs that validated the same rows (honest score on those rows), refused otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import datagen
import podium
from podium.core.errors import PodiumError
from podium.inference.blends import BLENDS, cross_fit, inner_folds
from podium.runs.board import leaderboard
from podium.tasks.task import get_task


def test_a_holdout_sweep_and_an_ensemble_of_its_runs(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    data = datagen.csv_single(tmp_path / "data", n=48, n_test=6)
    holdout = (*tiny, "cv.folds=4", "cv.train_folds=0")
    table = podium.sweep(data, ["model.resize=squash,crop"], overrides=holdout, name="hold")
    assert (table["status"] == "done").all()
    best = table.loc[table["cv_score"].idxmax()]
    assert sorted(table["rank"].tolist()) in ([1, 2], [1, 1]) and best["rank"] == 1  # ranked by the metric
    runs = [Path(p) for p in table["run_dir"]] if "run_dir" in table else sorted(
        (tmp_path / "runs").glob("hold-*"))
    for path in runs:
        run = podium.load(path)
        assert run.metrics["oof_rows"] == 12 and run.metrics["validated"] == "fold 0 of 4"
        assert len(run.checkpoints()) == 1
    full = podium.train(data, overrides=[*tiny, "cv.folds=4", "run.name=full"])
    groups = leaderboard(tmp_path / "runs")
    assert sorted(len(g["rows"]) for g in groups) == [1, 2]  # the holdout runs are ranked apart from the full run
    assert {g["validated"] for g in groups} == {"fold 0 of 4", "all folds"}

    ens = podium.ensemble(*runs, blend="weights", name="hold-ens")
    m = ens.metrics
    ranked = {g["validated"]: [r["name"] for r in g["rows"]] for g in leaderboard(tmp_path / "runs")}
    assert any(n.startswith("hold-ens") for n in ranked["fold 0 of 4"])  # ranked with its holdout members
    assert m["oof_rows"] == 12 and len(ens.oof) == 12 and set(ens.oof["fold"]) == {0}
    assert np.isfinite(m["cv_score"]) and len(m["fold_weights"]) >= 2  # cross-fitted on chunks of the holdout
    sub = pd.read_csv(ens.submission_path)
    assert len(sub) == 6 and list(sub.columns) == ["image_id", "label"]
    with pytest.raises(PodiumError, match=r"validated other rows than .*48 rows of fold\(s\) 0, 1, 2, 3 vs 12 rows"):
        podium.ensemble(runs[0], full.path)
    assert not list((tmp_path / "runs").glob("ensemble-*"))  # the refused ensemble left nothing


def test_cross_fit_of_one_fold_uses_inner_chunks() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    members = [np.eye(3)[np.where(rng.random(60) < q, y, rng.integers(0, 3, 60))] * 0.8 + 0.066 for q in (.9, .5)]
    result = cross_fit(BLENDS.get("weights"), get_task("multiclass"), y, members, np.zeros(60, dtype=int))
    assert sorted(result.fold_weights) == list(range(5)) and result.honest.shape == (60, 3)
    assert sorted(np.bincount(inner_folds(60))) == [12] * 5
    groups = np.arange(60) // 3  # duplicate clusters of three rows: each cluster stays in one chunk
    chunks = inner_folds(60, groups=groups)
    assert all(len(set(chunks[groups == g])) == 1 for g in range(20)) and len(set(chunks)) == 5


def test_ensemble_groups_are_the_members_duplicate_clusters(single_dir: Path, tiny: tuple[str, ...]) -> None:
    import shutil

    from podium.multirun.ensemble import duplicate_groups

    shutil.copyfile(single_dir / "train_images" / "img000.png", single_dir / "train_images" / "img003.png")
    run = podium.train(single_dir, overrides=[*tiny, "cv.train_folds=0"])
    ids = run.folds_table["id"].tolist()
    groups = duplicate_groups(run, ids)
    assert groups[ids.index("img000")] == groups[ids.index("img003")] and len(set(groups)) == len(ids) - 1


def test_an_old_experiment_log_gains_the_validated_column(tmp_path: Path) -> None:
    import sqlite3

    from podium.runs.log import DB_NAME, list_runs, record_run

    with sqlite3.connect(tmp_path / DB_NAME) as con:  # a log written before the column existed
        con.execute("CREATE TABLE runs (run_dir TEXT PRIMARY KEY, name TEXT, started TEXT, status TEXT, "
                    "metric TEXT, cv_score REAL)")
        con.execute("INSERT INTO runs VALUES ('/r/old', 'old', '2026-01-01', 'done', 'log_loss', 0.4)")
    record_run(tmp_path, {"run_dir": "/r/new", "name": "new", "started": "2026-01-02", "status": "done",
                          "metric": "log_loss", "cv_score": 0.3, "validated": "fold 0 of 5"})
    rows = list_runs(tmp_path)
    assert [r["name"] for r in rows] == ["new", "old"]  # log_loss: lower first
    assert rows[0]["validated"] == "fold 0 of 5" and rows[1]["validated"] is None


def test_holdout_cut_points_are_cross_fitted_on_chunks_and_so_is_their_blend(tmp_path: Path,
                                                                             tiny: tuple[str, ...]) -> None:
    """A holdout has no other fold: its cut points are cross-fitted on seeded chunks of the validated rows, and an
    ensemble of holdout runs scores each member on the same chunks (its own cv_score) and its blend likewise."""
    data = datagen.folders(tmp_path / "grades", per_class=8, classes=("0", "1", "2", "3", "4"), test=4)
    holdout = (*tiny, "data.task=ordinal", "cv.train_folds=0")
    runs = [podium.train(data, overrides=[*holdout, f"run.name=h{k}", f"model.resize={r}"])
            for k, r in enumerate(("squash", "crop"))]
    for run in runs:
        m = run.metrics
        assert m["cross_fit"]["on"] == "5 seeded chunks of the validated fold" and len(m["cross_fit"]["per_part"]) == 5
        assert {"cv_score_plain", "cv_score_in_sample"} <= set(m)
    ens = podium.ensemble(*[r.path for r in runs], blend="weights", name="hold-ens")
    m = ens.metrics
    assert m["cross_fit"]["decisions"] == ["cut_points"] and sorted(map(int, m["fold_weights"])) == list(range(5))
    assert [r["cv_score"] for r in m["members"]] == pytest.approx([r.metrics["cv_score"] for r in runs], abs=1e-12)
    assert m["gain_over_best"] == pytest.approx(m["cv_score"] - max(r.metrics["cv_score"] for r in runs))
