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


def test_suspects_lists_the_worst_labels_and_says_how_many(single_dir: Path, tiny: tuple[str, ...], cli) -> None:
    """``podium suspects RUN --top 3``: at most 3 rows, the count among the OOF labels and how to act on them; a run
    without suspects.csv is one line, exit 2."""
    from typer.testing import CliRunner

    from podium.cli import app
    from podium.config import PodiumConfig, merge
    from podium.pipeline import train

    run = train(single_dir, merge(PodiumConfig(), list(tiny)))
    written = run.suspects()
    assert written is not None
    out = CliRunner().invoke(app, ["suspects", str(run.path), "--top", "3"])
    assert out.exit_code == 0, out.output
    oof_count = int((written["source"] == "oof").sum())
    assert f"{oof_count} of 48 out-of-fold labels are suspects" in out.output
    assert f"data.suspects={run.path} data.suspect_action=drop|relabel|soft|weight" in out.output
    listed = [i for i in written["id"] if f" {i} " in out.output]
    assert len(listed) <= 3 and listed == written["id"].head(3).tolist()

    oof = run.oof  # more suspects than --top: only the 3 worst, and how many more there are
    run.write_suspects(pd.DataFrame({"id": oof["id"].head(6), "fold": oof["fold"].head(6),
                                     "given": oof["label"].head(6), "suggested": "cat",
                                     "quality": [0.01, 0.02, 0.03, 0.04, 0.05, 0.06], "source": "oof"}))
    out = CliRunner().invoke(app, ["suspects", str(run.path), "--top", "3"])
    assert out.exit_code == 0, out.output
    assert [i for i in oof["id"] if f" {i} " in out.output] == oof["id"].head(3).tolist()
    assert "6 of 48 out-of-fold labels are suspects (12.5%)" in out.output and "3 more rows not shown" in out.output
    assert "0.010" in out.output and "0.040" not in out.output

    (run.path / "suspects.csv").unlink()
    code, err = cli("suspects", str(run.path))
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    assert str(run.path) in err and "no suspects.csv" in err and "finished before" in err
