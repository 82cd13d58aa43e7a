"""The bad-input corpus: broken competition folders, each answered through the CLI with exit status 2 and one line
naming the file or row (never a traceback), before any run folder is made. Odd but usable images are converted."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import corpus
import datagen
from corpus import assert_one_error, run_cli


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_CACHE", str(tmp_path / "cache"))


def _edit_csv(path: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    edit(pd.read_csv(path, dtype=str, keep_default_na=False)).to_csv(path, index=False)


def _train_csv(root: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    _edit_csv(root / "train.csv", edit)


def only_id_column(root: Path) -> None:
    _train_csv(root, lambda df: df[["image_id"]])


def duplicate_ids(root: Path) -> None:
    _train_csv(root, lambda df: df.assign(image_id=df["image_id"].where(df.index != 4, "img003")))


def id_without_file(root: Path) -> None:
    (root / "train_images" / "img011.jpg").unlink()


def empty_label(root: Path) -> None:
    _train_csv(root, lambda df: df.assign(label=df["label"].where(df.index != 6, "")))


def unknown_label_in_sample(root: Path) -> None:
    _edit_csv(root / "sample_submission.csv",
              lambda df: pd.DataFrame({"image_id": df["image_id"], "cat": 0.3, "dog": 0.3, "wolf": 0.4}))


def zero_byte_image(root: Path) -> None:
    (root / "train_images" / "img005.jpg").write_bytes(b"")


def truncated_jpeg(root: Path) -> None:
    corpus.truncate(root / "train_images" / "img008.jpg")


def text_named_jpg(root: Path) -> None:
    (root / "train_images" / "img009.jpg").write_text("id,label\nnot,an image\n")


def three_bad_files(root: Path) -> None:
    zero_byte_image(root)
    truncated_jpeg(root)
    text_named_jpg(root)


def sample_ids_not_in_test_folder(root: Path) -> None:
    _edit_csv(root / "sample_submission.csv", lambda df: df.assign(image_id=[f"s{i:03d}" for i in range(len(df))]))


def single_image_class(root: Path) -> None:
    _train_csv(root, lambda df: df.assign(label=df["label"].where(df.index != 29, "wolf")))


def bad_test_image(root: Path) -> None:
    (root / "test_images" / "t002.jpg").write_bytes(b"\xff\xd8\xff\xe0 only a header")


def folds_file_splits_duplicates(root: Path) -> None:
    corpus.add_duplicates(root, {"copy": ("img000", "cat")})
    folds = pd.DataFrame({"id": [f"img{i:03d}" for i in range(30)] + ["copy"], "fold": [0, 1] * 15 + [1]})
    folds.to_csv(root / "my_folds.csv", index=False)


CASES = [
    # (breaker, extra CLI arguments, what the one-line message must name)
    (only_id_column, [], ["train.csv", "only the id column 'image_id'"]),
    (None, ["data.label_cols=grade"], ["train.csv", "no column 'grade'"]),
    (duplicate_ids, [], ["train.csv", "duplicate ids", "img003 (rows 5, 6)"]),
    (id_without_file, [], ["no image file", "img011"]),
    (empty_label, [], ["train.csv", "empty labels", "rows 8"]),
    (unknown_label_in_sample, [], ["sample_submission.csv", "wolf"]),
    (zero_byte_image, [], ["train_images/img005.jpg (empty file (0 bytes))", "--skip-bad"]),
    (truncated_jpeg, [], ["train_images/img008.jpg (truncated JPEG"]),
    (text_named_jpg, [], ["train_images/img009.jpg (cannot be decoded"]),
    (three_bad_files, [], ["3 image(s)", "img005.jpg", "img008.jpg", "img009.jpg"]),
    (bad_test_image, ["--skip-bad"], ["test_images/t002.jpg", "test images cannot be skipped"]),
    (sample_ids_not_in_test_folder, [], ["sample_submission.csv", "s000"]),
    (single_image_class, [], ["single training image", "'wolf' (image img029)"]),
    (None, ["data.conflicts=vote"], ["conflict policy 'vote'", "majority"]),
    (None, ["data.group_col=patient"], ["train.csv", "no column 'patient'"]),
    (None, ["data.near_distance=30"], ["near_distance", "16"]),
    (folds_file_splits_duplicates, ["cv.folds_file=MY_FOLDS"], ["my_folds.csv", "img000 + copy"]),
    (None, ["cv.train_folds=[0, 7]"], ["cv.train_folds", "[7] outside 0..1"]),
]


@pytest.mark.parametrize(("breaker", "extra", "expected"), CASES,
                         ids=[c[0].__name__ if c[0] else c[1][0].split("=")[0] for c in CASES])
def test_bad_input_gives_one_clear_line(breaker: Callable[[Path], None] | None, extra: list[str],
                                        expected: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root = datagen.csv_single(tmp_path / "comp", n=30, ext=".jpg")
    if breaker is not None:
        breaker(root)
    runs = tmp_path / "runs"
    extra = [a.replace("MY_FOLDS", str(root / "my_folds.csv")) for a in extra]
    code, _, err = run_cli(["train", str(root), *datagen.TINY, f"run.root={runs}", *extra], capsys, monkeypatch)
    assert_one_error(code, err, expected, tmp_path, runs)


def test_skip_bad_and_odd_colour_modes_train_and_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """CMYK JPEG, 16-bit, palette, RGBA and gray images train and predict; --skip-bad drops the broken ones."""
    root = corpus.odd_modes(tmp_path / "odd")
    (root / "train_images" / "img001.png").write_bytes(b"")
    (root / "train_images" / "img002.png").write_text("not an image")
    shutil.copyfile(root / "train_images" / "img004.png", root / "train_images" / "img004b.png")
    _train_csv(root, lambda df: pd.concat([df, pd.DataFrame({"image_id": ["img004b"], "label": ["dog"]})]))
    runs = tmp_path / "runs"
    args = ["train", str(root), *datagen.TINY, f"run.root={runs}"]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and "2 image(s)" in err and "img001.png" in err and "img002.png" in err
    code, out, err = run_cli([*args, "--skip-bad"], capsys, monkeypatch)
    assert code == 0, err
    assert "1 duplicate cluster(s) (1 byte-identical" in out and "2 unreadable image(s) skipped" in out
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    folds = pd.read_csv(run_dir / "folds.csv", dtype={"id": str})
    assert len(folds) == 47 and not {"img001", "img002"} & set(folds["id"])
    assert folds.loc[folds["id"].isin(["img004", "img004b"]), "fold"].nunique() == 1
    assert set(pd.read_csv(run_dir / "duplicates.csv")["id"]) == {"img004", "img004b"}
    sub = pd.read_csv(run_dir / "submission.csv")
    assert len(sub) == 12 and sub["label"].isin(["cat", "dog", "fox"]).all()
