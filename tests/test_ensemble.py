"""Ensembles of runs: shared folds, leak-free weight fitting, the ensemble folder and its validated submission, and
bad input refused in one line with nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import datagen
import podium
from podium.config import DataConfig
from podium.data.folders.ingest import load_competition
from podium.inference.blends import BLENDS, cross_fit, primary_score
from podium.runs.run import Run, experiment_log
from podium.tasks.submission import validate_submission
from podium.tasks.task import get_task


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three tiny multilabel runs on one data folder (two fold seeds), and one run of another data folder."""
    from accelerate.state import AcceleratorState, GradientState

    tmp = tmp_path_factory.mktemp("ens")
    data = datagen.csv_multilabel(tmp / "multi")
    other = datagen.csv_multilabel(tmp / "other", seed=1)
    base = (*datagen.TINY, f"run.root={tmp / 'runs'}", "cv.metric=mean_auc")  # the sample implies f1_samples
    out = {"data": data, "root": tmp / "runs"}
    for key, extra, where in (("a", ["run.name=a"], data), ("b", ["run.name=b", "model.resize=crop"], data),
                              ("seed", ["run.name=seed", "cv.seed=7"], data), ("other", ["run.name=other"], other)):
        out[key] = podium.train(where, overrides=[*base, *extra]).path
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return out


def test_runs_with_the_same_fold_settings_share_their_folds(runs: dict[str, Path]) -> None:
    a, b, seed = (pd.read_csv(runs[k] / "folds.csv", dtype={"id": str}) for k in ("a", "b", "seed"))
    assert a.equals(b)  # another model and resize, same data, cv.folds and cv.seed: identical folds
    assert a["id"].equals(seed["id"]) and not a["fold"].equals(seed["fold"])


def test_ensemble_folder_scores_and_validated_submission(runs: dict[str, Path]) -> None:
    ens = podium.ensemble(runs["a"], runs["b"], blend="weights", name="ens")
    files = {p.name for p in ens.path.iterdir()}
    assert {"run.json", "members.json", "folds.csv", "oof.csv", "decisions.json", "metrics.json",
            "test_predictions.csv", "submission.csv"} <= files
    members = ens.members
    weights = [m["weight"] for m in members["members"]]
    assert members["blend"] == "weights" and min(weights) >= 0 and sum(weights) == pytest.approx(1)
    m = ens.metrics
    assert m["metric"] == "mean_auc" and m["cv_score"] <= m["cv_score_in_sample"] + 1e-12
    assert [r["name"] for r in m["members"]] == [runs["a"].name, runs["b"].name]
    assert ens.decisions == m["decisions"] and "threshold" in ens.decisions
    oof = ens.oof
    assert oof["id"].tolist() == pd.read_csv(runs["a"] / "folds.csv", dtype={"id": str})["id"].tolist()
    comp = load_competition(runs["data"], DataConfig(), check=False)
    validate_submission(ens.submission_path, comp.submission, list(comp.classes))
    # the blended test probabilities are the members' saved ones mixed with the final weights
    tables = [Run(runs[k]).test_predictions for k in ("a", "b")]
    expected = sum(w * t[list(comp.classes)].to_numpy() for w, t in zip(weights, tables))
    assert np.allclose(ens.test_predictions[list(comp.classes)].to_numpy(), expected)
    row = next(r for r in experiment_log(runs["root"]) if r["run_dir"] == str(ens.path))
    assert row["status"] == "done" and row["model"] == "ensemble:weights" and row["cv_score"] == m["cv_score"]


def test_ensemble_folder_gets_its_report(runs: dict[str, Path], cli) -> None:
    import re

    Run(runs["a"]).write_report("<p>a's own report</p>")
    ens = podium.ensemble(runs["a"], runs["b"], blend="weights", name="reported")
    page = ens.report_path.read_text()
    alts = set(re.findall(r'<img alt="([^"]*)"', page))
    assert "could not be built" not in page
    assert {"class counts", "ROC curves", "threshold", "top losses"} <= alts
    assert not {"Grad-CAM", "training curves", "augmentation preview"} & alts  # the members' reports have them
    for text in ("honest (cross-fitted)", "in-sample (final weights)", "fold 0 weight", runs["b"].name,
                 "sample_f1_fitted", "Agreement of the members", "members.json", "model.resize"):
        assert text in page, text
    assert f'href="../{runs["a"].name}/report.html"' in page
    ens.report_path.unlink()
    code, err = cli("report", str(ens.path))
    assert code == 0 and ens.report_path.is_file(), err
    assert podium.report(ens.path) == ens.report_path


def test_a_failing_ensemble_report_is_a_warning_line(runs: dict[str, Path], monkeypatch, capsys) -> None:
    def broken(run, reporter=None):
        raise RuntimeError("no plots today")

    monkeypatch.setattr("podium.reporting.build_report", broken)
    ens = podium.ensemble(runs["a"], runs["b"], blend="mean")
    assert ens.status == "done" and ens.submission_path.is_file() and not ens.report_path.exists()
    assert "the report could not be written (RuntimeError: no plots today)" in capsys.readouterr().out


def test_equal_weight_blend_predicts_with_checkpoints_when_no_test_predictions(runs: dict[str, Path],
                                                                                tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "runs" / runs["b"].name
    shutil.copytree(runs["b"], copy)
    saved = pd.read_csv(copy / "test_predictions.csv")
    (copy / "test_predictions.csv").unlink()
    ens = podium.ensemble(runs["a"], copy, blend="mean")
    classes = list(saved.columns[2:])
    expected = (Run(runs["a"]).test_predictions[classes].to_numpy() + saved[classes].to_numpy()) / 2
    assert np.allclose(ens.test_predictions[classes].to_numpy(), expected, atol=1e-5)
    assert ens.metrics["cv_score"] == ens.metrics["cv_score_in_sample"]  # nothing fitted: nothing to cross-fit


def test_top_k_from_the_log_of_one_data_folder(runs: dict[str, Path]) -> None:
    ens = podium.ensemble(top=2, data=runs["data"], root=runs["root"], where=["cv.seed=42"], blend="mean")
    names = {m["name"] for m in ens.members["members"]}
    assert names == {runs["a"].name, runs["b"].name}


def test_bad_members_exit_2_in_one_line_and_write_nothing(runs: dict[str, Path], tmp_path: Path,
                                                          cli) -> None:
    before = sorted(p.name for p in runs["root"].iterdir())
    cases = {
        "other folds": ([str(runs["a"]), str(runs["seed"])], f"{runs['seed'].name} has other folds"),
        "not a run": ([str(runs["a"]), str(tmp_path)], "is not a podium run folder"),
        "other data": ([str(runs["a"]), str(runs["other"])], "differ in data_dir"),
        "one member": ([str(runs["a"])], "at least two runs"),
        "unknown blend": ([str(runs["a"]), str(runs["b"]), "--blend", "median"], "Unknown blend 'median'"),
        "several datasets": (["--top", "2", "--root", str(runs["root"])], "choose one with --data"),
        "bad where": (["--top", "2", "--root", str(runs["root"]), "--where", "model.size=3"], "model.size"),
    }
    for what, (args, message) in cases.items():
        code, err = cli("ensemble", *args)
        assert code == 2, what
        assert err.startswith("error:") and message in err and len(err.strip().splitlines()) == 1, (what, err)
    assert "id " in cli("ensemble", str(runs["a"]), str(runs["seed"]))[1]
    assert sorted(p.name for p in runs["root"].iterdir()) == before


def test_members_of_different_tasks_exit_2(tmp_path: Path, cli) -> None:
    """The same numeric grades trained as ordinal and as multiclass: same data folder and classes, other tasks."""
    data = datagen.csv_single(tmp_path / "grades", n=24, classes=("0", "1", "2"), n_test=3)
    base = (*datagen.TINY, f"run.root={tmp_path / 'runs'}")
    ordinal = podium.train(data, overrides=[*base, "run.name=ord", "data.task=ordinal"]).path
    multiclass = podium.train(data, overrides=[*base, "run.name=mc"]).path
    assert Run(ordinal).info["task"] == "ordinal" and Run(multiclass).info["task"] == "multiclass"
    before = sorted(p.name for p in (tmp_path / "runs").iterdir())
    code, err = cli("ensemble", str(ordinal), str(multiclass))
    assert code == 2 and err.startswith("error:") and "differ in task" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == before


def _synthetic(task_name: str, n: int = 300, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Targets, two informative members and one pure-noise member, and 5 folds."""
    rng = np.random.default_rng(seed)
    task = get_task(task_name)
    if task.multilabel:
        y = (rng.random((n, 4)) < 0.3).astype(np.int64)
        signal = y.astype(float)
    else:
        y = rng.integers(0, 3, n)
        signal = np.eye(3)[y]

    def member(noise: float) -> np.ndarray:
        logits = 2 * signal + noise * rng.normal(size=signal.shape)
        return task.probabilities(logits)

    return y, [member(1.5), member(2.0), task.probabilities(rng.normal(size=signal.shape))], np.arange(n) % 5


@pytest.mark.parametrize("task_name", ["multilabel", "multiclass"])
def test_weights_ignore_a_noise_member_and_do_not_leak(task_name: str) -> None:
    task = get_task(task_name)
    y, members, folds = _synthetic(task_name)
    result = cross_fit(BLENDS.get("weights"), task, y, members, folds)
    assert result.weights.sum() == pytest.approx(1) and (result.weights >= 0).all()
    assert result.weights[2] <= 0.05  # pure noise: (almost) no weight
    honest, in_sample = primary_score(task, y, result.honest), primary_score(task, y, result.probs)
    assert honest <= in_sample + 1e-12
    assert set(result.fold_weights) == {0, 1, 2, 3, 4}


def test_noise_alone_gains_nothing_honestly() -> None:
    """Members that are all pure noise: fitting weights in-sample finds chance gains, the cross-fitted score does
    not (it stays at chance level, below the in-sample one)."""
    rng = np.random.default_rng(3)
    task = get_task("binary")
    y = rng.integers(0, 2, 200)
    members = [task.probabilities(rng.normal(size=(200, 2))) for _ in range(6)]
    result = cross_fit(BLENDS.get("weights"), task, y, members, np.arange(200) % 5)
    assert primary_score(task, y, result.honest) < primary_score(task, y, result.probs)


@pytest.mark.parametrize("blend", ["mean", "logit_mean", "rank_mean"])
def test_equal_weight_blends_keep_probabilities_in_range(blend: str) -> None:
    task = get_task("multilabel")
    y, members, folds = _synthetic("multilabel")
    result = cross_fit(BLENDS.get(blend), task, y, members[:2], folds)
    assert np.allclose(result.weights, 0.5) and result.probs.shape == members[0].shape
    assert (result.probs >= 0).all() and (result.probs <= 1).all()
    assert primary_score(task, y, result.probs) > 0.8

