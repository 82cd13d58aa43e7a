import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from podium.core.errors import PodiumError
from podium.tasks.base import CLASS
from podium.tasks.submission import (
    FORMATS,
    SubmissionFormat,
    SubmissionKind,
    default_format,
    infer_format,
    make_submission,
    validate_submission,
    write_submission,
)
from podium.tasks.task import get_task

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


# ------------------------------------------------------------------------------------- what each format owns

IDS = ["x", "y", "z"]
ML = np.array([[0.9, 0.8, 0.1], [0.1, 0.2, 0.3], [0.6, 0.1, 0.7]])


@pytest.mark.parametrize(
    ("task", "sample", "classes", "probs", "kind", "text"),
    [
        ("multiclass", {"label": "a"}, CLASSES, P, "label", "id,label\nx,a\ny,c\nz,b\n"),
        ("ordinal", {"grade": "0"}, ["0", "1", "2"], P, "label", "id,grade\nx,0\ny,2\nz,1\n"),
        ("multilabel", {"labels": "a"}, CLASSES, ML, "labels", "id,labels\nx,a b\ny,c\nz,a c\n"),
        ("binary", {"target": "0.5"}, ["0", "1"], P[:, :2], "prob", "id,target\nx,0.2\ny,0.3\nz,0.5\n"),
        ("binary", {"target": "cat"}, ["cat", "dog"], P[:, :2], "label", "id,target\nx,cat\ny,dog\nz,dog\n"),
        ("multiclass", {"b": 0, "a": 0, "c": 0}, CLASSES, P, "probs",
         "id,b,a,c\nx,0.2,0.7,0.1\ny,0.3,0.1,0.6\nz,0.5,0.2,0.3\n"),
        ("multilabel", {"c": 0, "a": 0, "b": 0}, CLASSES, ML, "probs",
         "id,c,a,b\nx,0.1,0.9,0.8\ny,0.3,0.1,0.2\nz,0.7,0.6,0.1\n"),
    ],
)
def test_each_format_writes_and_validates_its_own_file(tmp_path: Path, task: str, sample: dict, classes: list[str],
                                                       probs: np.ndarray, kind: str, text: str) -> None:
    fmt = infer_format(pd.DataFrame({"id": IDS, **sample}), "id", get_task(task), classes, "sample.csv")
    assert fmt.kind == kind
    path = tmp_path / "s.csv"
    write_submission(path, fmt, IDS, probs, classes, 0.5)  # validates the file it wrote
    assert path.read_text() == text
    validate_submission(path, fmt, classes)


@pytest.mark.parametrize(
    ("kind", "columns", "row", "message"),
    [
        ("label", ("id", "label"), "x,d", "unknown label\\(s\\) d"),
        ("labels", ("id", "labels"), "x,a d", "unknown label\\(s\\) d"),
        ("prob", ("id", "target"), "x,1.2", "probabilities in \\[0, 1\\]"),
        ("prob", ("id", "target"), "x,b", "probabilities in \\[0, 1\\]"),
        ("probs", ("id", "a", "b", "c"), "x,0.2,-0.1,0.9", "column 'b' must hold probabilities"),
    ],
)
def test_each_format_validator_catches_a_bad_value(tmp_path: Path, kind: str, columns: tuple[str, ...], row: str,
                                                   message: str) -> None:
    path = tmp_path / "s.csv"
    path.write_text(",".join(columns) + "\n" + row + "\n")
    with pytest.raises(PodiumError, match=message):
        validate_submission(path, SubmissionFormat("id", columns, kind, ("x",)), CLASSES)


def test_default_format_is_the_tasks_first_that_needs_no_sample() -> None:
    assert default_format(get_task("multiclass"), CLASSES, IDS).columns == ("id", "label")
    assert default_format(get_task("binary"), ["0", "1"], IDS).kind == "label"
    fmt = default_format(get_task("multilabel"), CLASSES, IDS, id_col="image")
    assert (fmt.kind, fmt.columns, fmt.ids) == ("labels", ("image", "labels"), tuple(IDS))


def test_sample_with_only_the_id_column() -> None:
    with pytest.raises(PodiumError, match="only the id column"):
        infer_format(pd.DataFrame({"id": IDS}), "id", get_task("multiclass"), CLASSES, "sample.csv")


def _write_ranked(p: np.ndarray, classes: list[str], threshold: float, fmt: SubmissionFormat) -> dict[str, list]:
    return {fmt.columns[1]: [" ".join(classes[i] for i in row) for row in np.argsort(-p, axis=1)]}


def _validate_ranked(values: pd.Series, col: str, classes: list[str], where: str) -> None:
    if any(sorted(v.split()) != sorted(classes) for v in values):
        raise PodiumError(f"{where}: column {col!r} must rank every class.")


def _matches_ranked(sample: pd.DataFrame, values: list[str], task, classes: list[str], name: str) -> bool:
    return len(values) == 1 and values[0] == "ranking"


def test_a_new_format_registers_without_touching_other_modules(tmp_path: Path) -> None:
    FORMATS.register("ranked")(SubmissionKind(_write_ranked, _validate_ranked, _matches_ranked))
    try:
        task = dataclasses.replace(get_task("multiclass"), submissions=("probs", "ranked", "label"))
        fmt = infer_format(pd.DataFrame({"id": IDS, "ranking": "a b c"}), "id", task, CLASSES, "sample.csv")
        assert fmt.kind == "ranked"
        df = write_submission(tmp_path / "s.csv", fmt, IDS, P, CLASSES, 0.5)
        assert df["ranking"].tolist() == ["a b c", "c b a", "b c a"]
        (tmp_path / "bad.csv").write_text("id,ranking\nx,a b\ny,a b c\nz,a b c\n")
        with pytest.raises(PodiumError, match="must rank every class"):
            validate_submission(tmp_path / "bad.csv", fmt, CLASSES)
        # a sample the new format does not claim falls through to the next of the task's formats
        other = infer_format(pd.DataFrame({"id": IDS, "label": "a"}), "id", task, CLASSES, "sample.csv")
        assert other.kind == "label"
    finally:
        FORMATS.unregister("ranked")
    assert "ranked" not in FORMATS


@pytest.mark.parametrize("task", ["multiclass", "binary"])
def test_usage_column_is_kept_as_the_sample_has_it(tmp_path: Path, task: str) -> None:
    """Kaggle's id,<values>,Usage samples: the Usage cells are written back unchanged, in the sample's column order."""
    classes = CLASSES if task == "multiclass" else ["0", "1"]
    probs = P if task == "multiclass" else P[:, :2] / P[:, :2].sum(1, keepdims=True)
    usage = ["Public", "Private", ""]
    for values in ({"Usage": usage, "label": "a"}, {c: 0.5 for c in classes} | {"Usage": usage},
                   {"target": 0.5, "Usage": usage}):
        sample = pd.DataFrame({"id": ["x", "y", "z"], **values})
        try:
            fmt = infer_format(sample, "id", get_task(task), classes, "sample.csv")
        except PodiumError:
            assert task == "multiclass" and "target" in values  # a numeric column is no multiclass format
            continue
        df = write_submission(tmp_path / "s.csv", fmt, ["x", "y", "z"], probs, classes, 0.5)
        assert list(df.columns) == list(sample.columns) and df["Usage"].tolist() == usage
        (tmp_path / "s.csv").write_text((tmp_path / "s.csv").read_text().replace("Private", "private"))
        with pytest.raises(PodiumError, match="column 'Usage' row 3 holds 'private', the sample has 'Private'"):
            validate_submission(tmp_path / "s.csv", fmt, classes)


@pytest.mark.parametrize(("classes", "sample_label", "written"), [
    (["0.0", "1.0", "2.0"], "0", ["0", "2", "1"]),  # float labels in train.csv, integers in the sample
    (["0", "1", "2"], "0.0", ["0.0", "2.0", "1.0"]),  # and the other way round
    (["0.0", "1.0", "2.0"], "0.0", ["0.0", "2.0", "1.0"]),
    (["0.5", "1.0", "2.0"], "0", ["0.5", "2.0", "1.0"]),  # not integral: written as trained
    (["a", "b", "c"], "0", ["a", "c", "b"]),
])
def test_labels_are_spelled_as_the_sample_spells_them(tmp_path: Path, classes: list[str], sample_label: str,
                                                       written: list[str]) -> None:
    sample = pd.DataFrame({"id": ["x", "y", "z"], "label": sample_label})
    fmt = infer_format(sample, "id", get_task("multiclass"), classes, "sample.csv")
    df = write_submission(tmp_path / "s.csv", fmt, ["x", "y", "z"], P, classes, 0.5)
    assert df["label"].tolist() == written
    assert pd.read_csv(tmp_path / "s.csv", dtype=str)["label"].tolist() == written


def test_a_new_format_declaring_a_target_shape_reaches_the_tasks_of_that_shape(tmp_path: Path) -> None:
    FORMATS.register("ranked")(SubmissionKind(_write_ranked, _validate_ranked, _matches_ranked, shapes=(CLASS,)))
    try:
        assert get_task("multiclass").submissions == ("probs", "label", "ranked")
        assert get_task("binary").submissions == ("probs", "prob", "label", "ranked")
        assert "ranked" not in get_task("multilabel").submissions
        # matched after the built-in ones, so a one-column sample still is a label; without a sample the first
        # format with a default column is written, as before
        sample = pd.DataFrame({"id": IDS, "ranking": "a b c"})
        assert infer_format(sample, "id", get_task("multiclass"), CLASSES, "sample.csv").kind == "label"
        assert default_format(get_task("multiclass"), CLASSES, IDS).kind == "label"
    finally:
        FORMATS.unregister("ranked")
    assert get_task("multiclass").submissions == ("probs", "label")


@pytest.mark.parametrize(("task", "classes", "columns", "metric"), [
    ("multiclass", CLASSES, {c: 0.25 for c in CLASSES}, "mean_auc"),  # Plant Pathology 2020
    ("multilabel", CLASSES, {c: 0 for c in CLASSES}, ""),  # RANZCR: mean_auc, the multilabel task's own
    ("binary", ["0", "1"], {"target": 0}, ""),  # SIIM-ISIC: roc_auc, the binary task's own
    ("binary", ["cat", "dog"], {"label": 0.5}, "log_loss"),  # Dogs vs. Cats Redux
    ("binary", ["cat", "dog"], {"label": "cat"}, "accuracy"),  # a label sample of a binary task
    ("multiclass", CLASSES, {"label": "a"}, ""),  # Cassava, Paddy: accuracy, the task's own
    ("ordinal", ["0", "1", "2"], {"diagnosis": 0}, ""),  # APTOS: qwk, the task's own
    ("multilabel", CLASSES, {"labels": "a"}, "f1_samples"),  # Plant Pathology 2021
])
def test_the_sample_implies_a_metric_by_its_shape(task: str, classes: list[str], columns: dict, metric: str) -> None:
    from podium.tasks.submission import implied_metric

    sample = pd.DataFrame({"id": ["x", "y"], **columns})
    fmt = infer_format(sample, "id", get_task(task), classes, "sample.csv")
    name, why = implied_metric(sample, fmt, get_task(task), "sample.csv")
    assert name == metric and (why.startswith("sample.csv: ") if metric else why == "")


def test_an_implied_metric_that_does_not_fit_the_task_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    from podium.tasks.submission import implied_metric

    sample = pd.DataFrame({"id": ["x"], "label": "a"})
    fmt = infer_format(sample, "id", get_task("multiclass"), CLASSES, "sample.csv")
    kind = dataclasses.replace(FORMATS.get("label"), scored_by=lambda values, task: ("roc_auc", "one column"))
    monkeypatch.setitem(FORMATS._items, "label", kind)  # a scorer naming a metric the multiclass task cannot read
    assert implied_metric(sample, fmt, get_task("multiclass"), "sample.csv") == ("", "")
