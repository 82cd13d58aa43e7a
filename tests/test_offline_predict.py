"""``podium predict RUN_OR_ENSEMBLE --data COMP_DIR --out FILE``: a Kaggle code competition's inference, with the run,
ensemble and data folders read-only and a hidden test set (other ids, more images, its own sample) swapped in."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

import datagen
import podium
from podium.core.errors import PodiumError


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny runs on one single-label folder, an ensemble of them, and a hidden test set of that folder."""
    from accelerate.state import AcceleratorState, GradientState

    tmp = tmp_path_factory.mktemp("offline")
    data = datagen.csv_single(tmp / "comp")
    base = (*datagen.TINY, f"run.root={tmp / 'runs'}")
    out = {"data": data, "hidden": datagen.hidden_test_set(data, tmp / "hidden")}
    out["a"] = podium.train(data, overrides=[*base, "run.name=a"]).path
    out["b"] = podium.train(data, overrides=[*base, "run.name=b", "model.resize=crop"]).path
    out["ens"] = podium.ensemble(out["a"], out["b"], blend="mean", name="ens").path
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return out


def test_run_predicts_its_own_test_set_as_training_did(trained: dict[str, Path], tmp_path: Path) -> None:
    with datagen.read_only(trained["a"], trained["data"]):
        sub = podium.predict(trained["a"], data=trained["data"], out=tmp_path / "submission.csv")
    assert (tmp_path / "submission.csv").read_bytes() == (trained["a"] / "submission.csv").read_bytes()
    assert list(sub.columns) == ["image_id", "label"]


def test_run_predicts_a_hidden_test_set_from_read_only_folders(trained: dict[str, Path], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the Kaggle working folder: the default --out lands here
    with datagen.read_only(trained["a"], trained["hidden"]):
        sub = podium.predict(trained["a"], data=trained["hidden"])
    sample = pd.read_csv(trained["hidden"] / "sample_submission.csv", dtype=str)
    assert sub["image_id"].tolist() == sample["image_id"].tolist() and len(sub) == 20
    assert set(sub["label"]) <= {"cat", "dog", "fox"}
    assert (tmp_path / "submission.csv").is_file() and os.listdir(tmp_path) == ["submission.csv"]


def test_ensemble_predicts_new_data_through_its_members(trained: dict[str, Path], tmp_path: Path) -> None:
    with datagen.read_only(trained["ens"], trained["a"], trained["b"], trained["data"], trained["hidden"]):
        own = podium.predict(trained["ens"], data=trained["data"], out=tmp_path / "own.csv")
        hidden = podium.predict(trained["ens"], data=trained["hidden"], out=tmp_path / "hidden.csv")
    saved = pd.read_csv(trained["ens"] / "submission.csv", dtype=str, keep_default_na=False)
    assert own.equals(saved)  # the same blend and decisions as the ensemble's own submission
    assert hidden["image_id"].tolist() == pd.read_csv(trained["hidden"] / "sample_submission.csv")["image_id"].tolist()


def test_ensemble_finds_its_members_beside_it_when_moved(trained: dict[str, Path], tmp_path: Path) -> None:
    moved = tmp_path / "dataset"  # e.g. /kaggle/input/my-models: the runs root uploaded as a dataset
    for key in ("ens", "a", "b"):
        shutil.copytree(trained[key], moved / trained[key].name)
    gone = {k: trained[k].with_name(trained[k].name + "-gone") for k in ("a", "b")}
    for k, g in gone.items():
        trained[k].rename(g)
    try:
        sub = podium.predict(moved / trained["ens"].name, data=trained["hidden"], out=tmp_path / "s.csv")
        with pytest.raises(PodiumError, match="lacks member run"):
            shutil.rmtree(moved / trained["b"].name)
            podium.predict(moved / trained["ens"].name, data=trained["hidden"], out=tmp_path / "t.csv")
    finally:
        for k, g in gone.items():
            g.rename(trained[k])
    assert len(sub) == 20 and not (tmp_path / "t.csv").exists()


def test_cli_predict_data(trained: dict[str, Path], tmp_path: Path, cli) -> None:
    code, _ = cli("predict", str(trained["b"]), "--data", str(trained["hidden"]), "--out", str(tmp_path / "s.csv"))
    assert code == 0 and len(pd.read_csv(tmp_path / "s.csv")) == 20


def test_bad_inputs_are_one_line_and_write_nothing(trained: dict[str, Path], tmp_path: Path, cli) -> None:
    empty = tmp_path / "empty"
    shutil.copytree(trained["data"], empty, ignore=shutil.ignore_patterns("test_images", "sample_submission.csv"))
    with pytest.raises(PodiumError, match="has no test images"):
        podium.predict(trained["a"], data=empty, out=tmp_path / "s.csv")
    with pytest.raises(PodiumError, match="is a folder"):
        podium.predict(trained["a"], data=trained["hidden"], out=tmp_path)
    with pytest.raises(PodiumError, match="not both"):
        podium.predict(trained["a"], data=trained["hidden"], images=trained["hidden"] / "test_images")
    code, err = cli("predict", str(trained["a"]), "--data", str(tmp_path / "nowhere"), "--out",
                    str(tmp_path / "s.csv"))
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.csv").exists()


def test_multilabel_run_decodes_with_its_fitted_threshold(multilabel_dir: Path, tiny: tuple[str, ...],
                                                          tmp_path: Path) -> None:
    run = podium.train(multilabel_dir, overrides=list(tiny))
    with datagen.read_only(run.path, multilabel_dir):
        podium.predict(run, data=multilabel_dir, out=tmp_path / "s.csv")
    assert "threshold" in run.decisions
    assert (tmp_path / "s.csv").read_bytes() == run.submission_path.read_bytes()


def test_a_run_without_a_finished_fold_writes_no_submission(trained: dict[str, Path], tmp_path: Path, cli) -> None:
    half = datagen.unfinished(trained["a"], tmp_path / "half")  # best.pt is there, as an interrupted run leaves it
    code, err = cli("predict", str(half), "--data", str(trained["hidden"]), "--out", str(tmp_path / "s.csv"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "has no finished fold to predict with" in err and f"podium resume {half}" in err
    assert not (tmp_path / "s.csv").exists()
