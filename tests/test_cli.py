"""End to end through the real entry point: train 2 folds x 1 epoch of a tiny model on 32 px generated images,
predict, list runs, and answer a user's mistake with one line and exit status 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from podium.config import DataConfig
from podium.data.folders.ingest import load_competition
from podium.tasks.submission import validate_submission

SRC = str(Path(__file__).resolve().parents[1] / "src")


def podium(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "podium", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_train_predict_runs_end_to_end(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path) -> None:
    out = podium("train", str(single_dir), *tiny, "run.name=e2e", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    (run_dir,) = (tmp_path / "runs").glob("e2e-*")
    for name in ("config.yaml", "folds.csv", "oof.csv", "metrics.json", "test_predictions.csv", "submission.csv",
                 "run.json", "train.log", "fold0/best.pt", "fold0/log.csv", "fold1/best.pt", "fold1/log.csv"):
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.rglob("last.pt")) and not list(run_dir.rglob(".*.tmp"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["metric"] == "accuracy" and 0 <= metrics["cv_score"] <= 1 and len(metrics["per_fold"]) == 2
    assert set(metrics["per_class"]) == {"cat", "dog", "fox"}
    oof = pd.read_csv(run_dir / "oof.csv")
    assert len(oof) == 48 and set(oof["fold"]) == {0, 1} and oof["id"].is_unique
    comp = load_competition(single_dir, DataConfig(), check=False)
    validate_submission(run_dir / "submission.csv", comp.submission, list(comp.classes))
    sub = pd.read_csv(run_dir / "submission.csv")
    assert sub["image_id"].tolist() == pd.read_csv(single_dir / "sample_submission.csv")["image_id"].tolist()

    pred = podium("predict", str(run_dir), "--images", str(single_dir / "test_images"), cwd=tmp_path)
    assert pred.returncode == 0, pred.stderr
    table = pd.read_csv(run_dir / "predictions-test_images.csv")
    assert len(table) == 12 and list(table.columns) == ["id", "label", "cat", "dog", "fox"]

    again = podium("predict", str(run_dir), cwd=tmp_path)
    assert again.returncode == 0 and pd.read_csv(run_dir / "submission.csv").equals(sub)

    runs = podium("runs", "--root", str(tmp_path / "runs"), cwd=tmp_path)
    assert runs.returncode == 0 and "e2e-" in runs.stdout and "test_resnet" in runs.stdout


def test_user_errors_are_one_line_and_exit_2(single_dir: Path, tmp_path: Path) -> None:
    for args in (["train", str(tmp_path / "missing")], ["train", str(single_dir), "train.epoch=1"],
                 ["predict", str(tmp_path)]):
        out = podium(*args, cwd=tmp_path)
        assert out.returncode == 2, out.stderr
        assert out.stderr.startswith("error:") and "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists()


def test_train_help_documents_every_option_group(tmp_path: Path) -> None:
    out = podium("train", "--help", cwd=tmp_path)
    assert out.returncode == 0
    for group in ("data.", "model.", "aug.", "train.", "cv.", "predict.", "run."):
        assert group in out.stdout


def test_a_users_text_is_printed_verbatim(tmp_path: Path, cli) -> None:
    """rich read ``:b:`` in ``cv.metric=a:b:c:d`` as an emoji code (``'a🅱c:d'``) and ``[bold]`` as markup."""
    code, err = cli("train", str(tmp_path), "cv.metric=a:b:c:d")
    assert code == 2 and "'a:b:c:d'" in err and "\U0001f171" not in err, err
    code, err = cli("train", str(tmp_path), "cv.metric=[bold]x:smile:y")
    assert code == 2 and "'[bold]x:smile:y'" in err, err
    folder = tmp_path / r"comp \[x] [dim]:thumbs_up:"
    folder.mkdir()
    code, err = cli("train", str(folder), "model.pretrained=none")
    assert code == 2 and str(folder) in err, err
