"""The real-world corpus: folders as people download them (macOS metadata, GIFs, Windows ids, semicolon and Latin-1
CSVs, Kaggle's Usage column, float labels, ordinal grades). Valid ones train and write the submission the sample asks
for; invalid ones stop through the CLI with one line naming the file, row or key and the fix (exit status 2, no
traceback, no run folder)."""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import datagen
from corpus import assert_one_error, run_cli
from podium.config import DataConfig
from podium.data.folders.ingest import load_competition


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_CACHE", str(tmp_path / "cache"))


def _frame(root: Path, name: str = "train.csv") -> pd.DataFrame:
    return pd.read_csv(root / name, dtype=str, keep_default_na=False)


def _write(root: Path, df: pd.DataFrame, name: str = "train.csv", sep: str = ",", encoding: str = "utf-8") -> None:
    (root / name).write_bytes(df.to_csv(index=False, sep=sep, lineterminator="\r\n").encode(encoding))


def _gif(path: Path, frames: int = 2) -> None:
    """Replace the image at ``path`` (any extension) by a GIF with the same first frame (animated when frames > 1)."""
    src = next(path.parent.glob(path.stem + ".*"))
    first = Image.open(src).convert("RGB")
    src.unlink()
    rest = [Image.new("RGB", first.size, (k * 60, 0, 0)) for k in range(1, frames)]
    first.save(path, "GIF", save_all=frames > 1, append_images=rest, duration=100, loop=0)


def _apple_double(folder: Path, root: Path) -> None:
    """What macOS writes beside every file on FAT/exFAT and network drives, and what zips made on a Mac carry."""
    for f in sorted(folder.iterdir()):
        if f.is_file():
            (folder / f"._{f.name}").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(60))
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(20))
    macosx = root / "__MACOSX" / folder.relative_to(root)
    macosx.mkdir(parents=True, exist_ok=True)
    (macosx / "._img000.png").write_bytes(b"\x00\x05\x16\x07")


# ------------------------------------------------------------------------------------------------- valid folders


def test_kaggle_style_csv_folder_from_a_windows_spreadsheet_trains(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Semicolons, a BOM, CRLF, Windows ids, upper-case extensions, float labels, GIFs, AppleDouble files and a sample
    with a Usage column: trains, and the submission keeps Usage and writes labels as the sample does (``2``)."""
    root = datagen.csv_single(tmp_path / "comp", n=30, classes=("0.0", "1.0", "2.0"), ids_with_ext=True)
    for i in (0, 1, 2):  # the files say .PNG, the CSV .png
        (root / "train_images" / f"img00{i}.png").rename(root / "train_images" / f"img00{i}.PNG")
    _gif(root / "train_images" / "img003.gif")
    _gif(root / "test_images" / "t001.gif", frames=1)
    df = _frame(root)
    df.loc[3, "image_id"] = "img003.gif"
    df["image_id"] = "train_images\\" + df["image_id"]
    _write(root, df, sep=";", encoding="utf-8-sig")
    sample = _frame(root, "sample_submission.csv").assign(label="0", Usage=["Public", "Private"] * 6)
    sample.loc[1, "image_id"] = "t001.gif"
    _write(root, sample, "sample_submission.csv", sep=";")
    _apple_double(root / "train_images", root)
    _apple_double(root / "test_images", root)
    runs = tmp_path / "runs"
    code, out, err = run_cli(["train", str(root), *datagen.TINY, f"run.root={runs}"], capsys, monkeypatch)
    assert code == 0, err
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    assert len(pd.read_csv(run_dir / "folds.csv")) == 30  # no AppleDouble file became a training row
    sub = pd.read_csv(run_dir / "submission.csv", dtype=str, keep_default_na=False)
    assert list(sub.columns) == ["image_id", "label", "Usage"]
    assert sub["Usage"].tolist() == sample["Usage"].tolist() and sub["image_id"].tolist() == sample["image_id"].tolist()
    assert set(sub["label"]) <= {"0", "1", "2"}


def test_class_folders_with_mac_metadata_gifs_and_junk_train_and_inspect_lists_what_it_ignored(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    root = datagen.folders(tmp_path / "potato", per_class=6, test=3)
    _gif(root / "train" / "early" / "train_early_000.gif")
    for d in (root / "train" / "early", root / "train" / "late", root / "test"):
        _apple_double(d, root)
    (root / "train" / "late" / "notes.txt").write_text("taken on a Tuesday")
    (root / "train" / "late" / "Thumbs.db").write_bytes(b"\x00" * 10)
    datagen.write_image(root / "train" / "late" / ".thumbnails" / "small.png", np.zeros((8, 8, 3), np.uint8))
    comp = load_competition(root, DataConfig())
    assert len(comp.train) == 18 and comp.classes == ("early", "healthy", "late") and len(comp.test) == 3
    runs = tmp_path / "runs"
    code, out, err = run_cli(["inspect", str(root), f"run.root={runs}", "data.near_distance=0"], capsys, monkeypatch)
    assert code == 0, err
    ignored = json.loads((runs / "inspect-potato" / "inspect.json").read_text())["ignored_files"]
    assert ignored["appledouble"]["count"] == 6 + 6 + 3 and ignored["hidden"]["count"] == 3
    assert ignored["not_image"] == {"count": 2, "examples": ["train/late/Thumbs.db", "train/late/notes.txt"]}
    assert ignored["macosx"]["count"] == 3 and "__MACOSX/train/early/._img000.png" in ignored["macosx"]["examples"]
    assert "ignored files (never read): 23" in out and "appledouble 15: test/._x000.jpg" in out
    code, out, err = run_cli(["train", str(root), *datagen.TINY, f"run.root={runs}"], capsys, monkeypatch)
    assert code == 0, err


def test_ordinal_words_train_in_the_declared_order(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = datagen.csv_single(tmp_path / "grades", n=30, classes=("mild", "none", "severe"))
    runs = tmp_path / "runs"
    args = ["train", str(root), *datagen.TINY, f"run.root={runs}", "data.task=ordinal",
            "data.class_order=[none, mild, severe]"]
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    assert json.loads((run_dir / "run.json").read_text())["classes"] == ["none", "mild", "severe"]
    assert set(pd.read_csv(run_dir / "submission.csv")["label"]) <= {"none", "mild", "severe"}


@pytest.mark.parametrize(("sep", "encoding", "keys"), [
    ("\t", "utf-8", []),
    ("|", "utf-8", []),
    (",", "utf-16", []),  # with its byte-order mark, as Excel's "Unicode text" writes it
    (",", "utf-16-le", []),  # without one: NUL bytes give it away
    (";", "latin-1", ["latin-1"]),
    (";", "cp1252", ["cp1252"]),
    (";", "utf-8", ["auto", "semicolon"]),
])
def test_csv_dialects_and_encodings(tmp_path: Path, sep: str, encoding: str, keys: list[str]) -> None:
    root = datagen.csv_single(tmp_path / "d", n=12)
    df = _frame(root)
    df["label"] = df["label"].str.replace("fox", "renard-\u00e9t\u00e9")
    df["image_id"] = "  " + df["image_id"] + "  "  # spaces around ids are not part of them
    _write(root, df, sep=sep, encoding=encoding)
    _write(root, _frame(root, "sample_submission.csv"), "sample_submission.csv", sep=sep, encoding=encoding)
    cfg = DataConfig(check_images=False, **dict(zip(("csv_encoding", "csv_sep"), keys)))
    comp = load_competition(root, cfg)
    assert comp.classes == ("cat", "dog", "renard-\u00e9t\u00e9") and len(comp.train) == 12


def test_ids_a_human_would_match(tmp_path: Path) -> None:
    root = datagen.csv_single(tmp_path / "m", n=12, ids_with_ext=True)
    df = _frame(root)
    df.loc[0, "image_id"] = "IMG000.png"  # case differs from img000.png
    df.loc[1, "image_id"] = "train_images\\img001.png"  # Windows path, relative to the data folder
    df.loc[2, "image_id"] = "./img002.png"
    df.loc[3, "image_id"] = "train_images/img003"  # folder and no extension
    _write(root, df)
    comp = load_competition(root, DataConfig(check_images=False))
    assert [Path(p).name for p in comp.train["path"][:4]] == ["img000.png", "img001.png", "img002.png", "img003.png"]
    assert comp.train["id"].iloc[0] == "IMG000.png"  # ids stay as the CSV writes them


def test_numeric_grades_sort_by_value(tmp_path: Path) -> None:
    root = datagen.folders(tmp_path / "g", per_class=2, classes=("9", "10", "2.5"))
    assert load_competition(root, DataConfig(task="ordinal", check_images=False)).classes == ("2.5", "9", "10")


# ------------------------------------------------------------------------------------------------ invalid folders


def latin1_csv(root: Path) -> None:
    df = _frame(root)
    df.loc[2, "label"] = "caf\u00e9"
    _write(root, df, encoding="latin-1")


def semicolon_with_wrong_sep(root: Path) -> None:
    _write(root, _frame(root), sep=";")


def zero_byte_csv(root: Path) -> None:
    (root / "train.csv").write_bytes(b"")


def header_only_csv(root: Path) -> None:
    (root / "train.csv").write_text("image_id,label\n")


def duplicated_columns(root: Path) -> None:
    (root / "train.csv").write_text("image_id,label,label\n" + "".join(
        f"img{i:03d},cat,dog\n" for i in range(30)))


def ragged_rows(root: Path) -> None:
    (root / "train.csv").write_text((root / "train.csv").read_text().replace("img004,", "img004,x,", 1))


def non_utf8_file_name(root: Path) -> None:
    folder = root / "train" / "cat"
    folder.mkdir(parents=True)
    for i in range(3):
        datagen.write_image(folder / f"cat{i}.png", datagen.class_image(0, np.random.default_rng(i)))
        datagen.write_image(root / "train" / "dog" / f"dog{i}.png", datagen.class_image(1, np.random.default_rng(i)))
    with open(os.path.join(os.fsencode(folder), b"caf\xe9_000.png"), "wb") as f:
        f.write((folder / "cat0.png").read_bytes())
    (root / "train.csv").unlink()


def mixed_case_class_folders(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split, name in (("train", "Cat"), ("val", "cat"), ("train", "dog"), ("val", "dog")):
        for i in range(3):
            datagen.write_image(root / split / name / f"{split}{i}.png", datagen.class_image(len(name), rng))
    (root / "train.csv").unlink()


def case_ambiguous_id(root: Path) -> None:
    images = root / "train_images"
    (images / "img002.jpg").rename(images / "IMG002.jpg")
    (images / "img003.jpg").rename(images / "Img002.jpg")  # two files fit img002 ignoring case; img003 has none
    (images / "img004.jpg").rename(images / "img004.jpeg")  # the CSV says img004 with .jpg below
    _write(root, _frame(root).assign(image_id=lambda d: d["image_id"].where(d.index != 4, "img004.jpg")))


def sample_usage_with_numbers(root: Path) -> None:
    sample = _frame(root, "sample_submission.csv").assign(weight="0.5")
    _write(root, sample, "sample_submission.csv")


def unchanged(root: Path) -> None:
    """The generated folder as it is (the mistake is in the arguments)."""


CASES = [
    # (breaker, extra CLI arguments, what the one-line message must name)
    (latin1_csv, [], ["train.csv is not utf-8", "line 4", "data.csv_encoding=cp1252"]),
    (semicolon_with_wrong_sep, ["data.csv_sep=comma"], ["train.csv", "only the id column 'image_id;label'"]),
    (zero_byte_csv, [], ["train.csv is empty (0 bytes)"]),
    (header_only_csv, [], ["train.csv has a header", "but no rows"]),
    (duplicated_columns, [], ["train.csv has duplicated column names: 'label' (columns 2, 3)"]),
    (ragged_rows, [], ["train.csv", "Expected 2 fields", "data.csv_sep"]),
    (non_utf8_file_name, [], ["train/cat/caf\\xe9_000.png is not UTF-8", "rename it"]),
    (mixed_case_class_folders, [], ["Class folders 'Cat' and 'cat'", "differ only in case"]),
    (case_ambiguous_id, [], ["3 ids of train.csv have no image file", "img002 (did you mean 'IMG002.jpg' or "
                             "'Img002.jpg'?)", "img003", "img004.jpg (did you mean 'img004.jpeg'?)"]),
    (sample_usage_with_numbers, [], ["sample_submission.csv", "label, weight", "hold no numbers, like Usage"]),
    (unchanged, ["data.task=ordinal"], ["data.task=ordinal ranks the classes", "cat, dog, fox are not numbers",
                                        "data.class_order=[cat,dog,fox]"]),
    (unchanged, ["data.class_order=[cat, dog]"], ["data.class_order leaves out fox"]),
    (unchanged, ["data.class_order=[cat, dog, fox, wolf]"], ["data.class_order names wolf"]),
    (unchanged, ["data.csv_encoding=ebcdic"], ["data.csv_encoding", "'ebcdic'"]),
    (unchanged, ["data.csv_sep=colon"], ["data.csv_sep", "'colon'"]),
]


@pytest.mark.parametrize(("breaker", "extra", "expected"), CASES,
                         ids=[f"{c[0].__name__}{'-' + c[1][0] if c[1] else ''}" for c in CASES])
def test_real_world_mistake_gives_one_clear_line(breaker: Callable[[Path], None], extra: list[str],
                                                 expected: list[str], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root = datagen.csv_single(tmp_path / "comp", n=30, ext=".jpg")
    breaker(root)
    runs = tmp_path / "runs"
    code, _, err = run_cli(["train", str(root), *datagen.TINY, f"run.root={runs}", *extra], capsys, monkeypatch)
    assert_one_error(code, err, expected, tmp_path, runs)


def test_files_where_folders_belong(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = datagen.csv_single(tmp_path / "comp", n=30, ext=".jpg")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    runs = tmp_path / "runs"
    for args, expected in [
        (["train", str(root / "train.csv"), f"run.root={runs}"], ["train.csv is a file", "competition folder"]),
        (["inspect", str(root / "train.csv"), f"run.root={runs}"], ["train.csv is a file"]),
        (["train", str(root), *datagen.TINY, f"run.root={a_file}"], ["run.root=", "notes.txt is a file"]),
        (["train", str(root), *datagen.TINY, f"run.root={a_file / 'sub'}"], ["notes.txt is a file"]),
        (["inspect", str(root), f"run.root={a_file}"], ["run.root=", "notes.txt is a file"]),
        (["inspect", str(root), "--out", str(a_file)], ["--out=", "notes.txt is a file"]),
    ]:
        code, _, err = run_cli(args, capsys, monkeypatch)
        assert_one_error(code, err, expected, tmp_path, runs)
    assert a_file.read_text() == "x"


def test_utf16_bom_detection_does_not_need_the_key(tmp_path: Path) -> None:
    """A BOM decides the encoding even when the rest would be valid UTF-8 too."""
    root = datagen.csv_single(tmp_path / "b", n=12)
    (root / "train.csv").write_bytes(codecs.BOM_UTF8 + (root / "train.csv").read_bytes())
    assert load_competition(root, DataConfig(check_images=False)).train["id"].iloc[0] == "img000"


def test_ignored_files_in_a_csv_layout_are_counted_by_kind(tmp_path: Path) -> None:
    from podium.data.folders.files import ignored_files

    root = datagen.csv_single(tmp_path / "c", n=12)
    images = root / "train_images"
    (images / "extra.png").write_bytes((images / "img000.png").read_bytes())  # an image no CSV row names
    with open(os.path.join(os.fsencode(images), b"caf\xe9.png"), "wb") as f:
        f.write(b"x")
    (images / "._img001.png").write_bytes(b"\x00\x05\x16\x07")
    comp = load_competition(root, DataConfig(check_images=False))  # unused odd names do not stop training
    used = comp.train["path"].tolist() + comp.test["path"].tolist()
    assert ignored_files(root, used) == {
        "unlisted_image": {"count": 1, "examples": ["train_images/extra.png"]},
        "non_utf8_name": {"count": 1, "examples": ["train_images/caf\\xe9.png"]},
        "appledouble": {"count": 1, "examples": ["train_images/._img001.png"]},
    }
