from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from podium.errors import PodiumError
from podium.submission import SubmissionFormat, infer_format, make_submission, validate_submission, write_submission
from podium.tasks import get_task

CLASSES = ["a", "b", "c"]
P = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])


def test_label_format_follows_sample_order(tmp_path: Path) -> None:
    sample = pd.DataFrame({"id": ["z", "x", "y"], "label": "a"})
    fmt = infer_format(sample, "id", get_task("multiclass"), CLASSES, "sample.csv")
    df = write_submission(tmp_path / "s.csv", fmt, ["x", "y", "z"], P, CLASSES, 0.5)
    assert df["id"].tolist() == ["z", "x", "y"] and df["label"].tolist() == ["b", "a", "c"]


def test_probs_format_uses_sample_column_order(tmp_path: Path) -> None:
    sample = pd.DataFrame({"id": ["x", "y", "z"], "c": 0.0, "a": 0.0, "b": 0.0})
    fmt = infer_format(sample, "id", get_task("multiclass"), CLASSES, "sample.csv")
    assert fmt.kind == "probs"
    df = write_submission(tmp_path / "s.csv", fmt, ["x", "y", "z"], P, CLASSES, 0.5)
    assert list(df.columns) == ["id", "c", "a", "b"] and df["c"].tolist() == [0.1, 0.6, 0.3]


def test_labels_format_never_empty(tmp_path: Path) -> None:
    sample = pd.DataFrame({"image": ["x", "y", "z"], "labels": "a"})
    fmt = infer_format(sample, "image", get_task("multilabel"), CLASSES, "sample.csv")
    p = np.array([[0.9, 0.8, 0.1], [0.1, 0.2, 0.3], [0.6, 0.1, 0.7]])
    df = write_submission(tmp_path / "s.csv", fmt, ["x", "y", "z"], p, CLASSES, 0.5)
    assert df["labels"].tolist() == ["a b", "c", "a c"]


def test_binary_probability_column(tmp_path: Path) -> None:
    sample = pd.DataFrame({"id": ["x", "y"], "target": "0.5"})
    fmt = infer_format(sample, "id", get_task("binary"), ["0", "1"], "sample.csv")
    df = write_submission(tmp_path / "s.csv", fmt, ["x", "y"], np.array([[0.8, 0.2], [0.3, 0.7]]), ["0", "1"], 0.5)
    assert fmt.kind == "prob" and df["target"].tolist() == [0.2, 0.7]


def test_sample_that_does_not_fit_the_classes() -> None:
    sample = pd.DataFrame({"id": ["x"], "a": 0, "q": 0})
    with pytest.raises(PodiumError, match="value columns a, q but the classes are a, b, c"):
        infer_format(sample, "id", get_task("multiclass"), CLASSES, "sample.csv")


def test_missing_prediction() -> None:
    fmt = SubmissionFormat("id", ("id", "label"), "label", ("x", "w"))
    with pytest.raises(PodiumError, match="No prediction for sample submission ids w"):
        make_submission(fmt, ["x"], P[:1], CLASSES, 0.5)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,label\nx,a\ny,b\n", "has 2 rows, the sample has 3"),
        ("id,label\nx,a\nz,b\ny,c\n", "row 3 has id 'z'"),
        ("id,lab\nx,a\ny,b\nz,c\n", "has columns"),
        ("id,label\nx,a\ny,\nz,c\n", "empty in row 3"),
        ("id,label\nx,a\ny,q\nz,c\n", "unknown label\\(s\\) q"),
    ],
)
def test_validator_catches_mismatches(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "s.csv"
    path.write_text(content)
    fmt = SubmissionFormat("id", ("id", "label"), "label", ("x", "y", "z"))
    with pytest.raises(PodiumError, match=message):
        validate_submission(path, fmt, CLASSES)


def test_validator_checks_probabilities(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("id,a,b,c\nx,0.2,1.5,0.1\n")
    with pytest.raises(PodiumError, match="probabilities"):
        validate_submission(path, SubmissionFormat("id", ("id", "a", "b", "c"), "probs", ("x",)), CLASSES)
