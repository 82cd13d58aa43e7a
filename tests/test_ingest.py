from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import datagen
from podium.config import DataConfig
from podium.core.errors import PodiumError
from podium.data.folders.ingest import load_competition


def test_csv_single_label(single_dir: Path) -> None:
    comp = load_competition(single_dir, DataConfig())
    assert comp.layout == "csv" and comp.task.name == "multiclass"
    assert comp.classes == ("cat", "dog", "fox") and comp.targets.tolist()[:4] == [0, 1, 2, 0]
    assert all(Path(p).is_file() for p in comp.train["path"])
    assert comp.test is not None and len(comp.test) == 12 and comp.submission is not None
    assert comp.submission.kind == "label" and comp.submission.id_col == "image_id"


def test_ids_with_extension_and_binary_ints(tmp_path: Path) -> None:
    root = datagen.csv_single(tmp_path / "b", classes=("0", "1"), ids_with_ext=True, ext=".jpg")
    comp = load_competition(root, DataConfig())
    assert comp.task.name == "binary" and comp.classes == ("0", "1")
    assert comp.train["id"].iloc[0].endswith(".jpg")


def test_binary_numeric_sample_means_probabilities(tmp_path: Path) -> None:
    root = datagen.csv_single(tmp_path / "b", classes=("0", "1"))
    sample = pd.read_csv(root / "sample_submission.csv")
    sample["label"] = 0.5
    sample.to_csv(root / "sample_submission.csv", index=False)
    assert load_competition(root, DataConfig()).submission.kind == "prob"


def test_space_separated_multilabel(multilabel_dir: Path) -> None:
    comp = load_competition(multilabel_dir, DataConfig())
    assert comp.task.name == "multilabel" and comp.classes == ("healthy", "rust", "scab", "spot")
    assert comp.targets.shape == (48, 4) and (comp.targets.sum(1) >= 1).all() and (comp.targets.sum(1) == 2).any()
    assert comp.submission.kind == "labels"


def test_one_column_per_class(onehot_dir: Path) -> None:
    comp = load_competition(onehot_dir, DataConfig())
    assert comp.task.name == "multilabel" and comp.submission.kind == "probs"
    assert comp.submission.columns == ("image_id", "healthy", "rust", "scab", "spot")


def test_one_hot_columns_with_one_label_per_row_are_multiclass(tmp_path: Path) -> None:
    root = datagen.csv_single(tmp_path / "oh")
    df = pd.read_csv(root / "train.csv")
    onehot = pd.get_dummies(df["label"]).astype(int)
    pd.concat([df[["image_id"]], onehot], axis=1).to_csv(root / "train.csv", index=False)
    comp = load_competition(root, DataConfig())
    assert comp.task.name == "multiclass" and comp.classes == ("cat", "dog", "fox")
    assert comp.targets.tolist()[:3] == [0, 1, 2]


def test_folder_per_class_with_test_folder(folders_dir: Path) -> None:
    comp = load_competition(folders_dir, DataConfig())
    assert comp.layout == "folders" and comp.classes == ("early", "healthy", "late")
    assert len(comp.train) == 36 and comp.train["id"].iloc[0].startswith("train/early/")
    assert comp.test is not None and len(comp.test) == 5 and comp.submission is None


def test_split_folders_are_pooled(tmp_path: Path) -> None:
    root = datagen.folders(tmp_path / "s", per_class=4, classes=("0", "1", "2"), splits=("train", "val"))
    comp = load_competition(root, DataConfig())
    assert len(comp.train) == 24 and comp.classes == ("0", "1", "2") and comp.test is None
    ordinal = load_competition(root, DataConfig(task="ordinal"))
    assert ordinal.task.name == "ordinal"


def test_class_folders_at_the_root(tmp_path: Path) -> None:
    root = tmp_path / "r"
    rng = np.random.default_rng(0)
    for k, c in enumerate(["a", "b"]):
        for i in range(3):
            datagen.write_image(root / c / f"{i}.png", datagen.class_image(k, rng))
    comp = load_competition(root, DataConfig())
    assert comp.layout == "folders" and len(comp.train) == 6


def test_configured_columns_and_dirs(tmp_path: Path) -> None:
    root = datagen.csv_single(tmp_path / "c")
    df = pd.read_csv(root / "train.csv")
    df["source"] = "web"
    df.rename(columns={"image_id": "name", "label": "y"}).to_csv(root / "labels.csv", index=False)
    (root / "train_images").rename(root / "pics")
    cfg = DataConfig(train_csv="labels.csv", id_col="name", label_cols=("y",), image_dir="pics")
    comp = load_competition(root, cfg)
    assert comp.classes == ("cat", "dog", "fox") and len(comp.train) == 48


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda df: df.assign(label=df["label"].where(df.index != 3, "")), "empty labels in column 'label', rows 5"),
        (lambda df: pd.concat([df, df.iloc[[0]]]), "duplicate ids: img000 \\(rows 2, 50\\)"),
        # no column named like a label or by the sample, and not 0/1: the user must say which is the label
        (lambda df: df.rename(columns={"label": "kind"}).assign(extra=df["label"]), "hold other values"),
        (lambda df: df.assign(image_id=df["image_id"].where(df.index != 1, "ghost")), "no image file.*ghost"),
        (lambda df: df.assign(label="cat"), "single class"),
    ],
)
def test_bad_training_csv(single_dir: Path, mutate, message: str) -> None:
    df = pd.read_csv(single_dir / "train.csv", dtype=str, keep_default_na=False)
    mutate(df).to_csv(single_dir / "train.csv", index=False)
    with pytest.raises(PodiumError, match=message):
        load_competition(single_dir, DataConfig())


def test_undecodable_images_are_listed_together(single_dir: Path) -> None:
    (single_dir / "train_images" / "img004.png").write_bytes(b"")
    (single_dir / "train_images" / "img007.png").write_text("not an image")
    with pytest.raises(PodiumError, match="2 image\\(s\\) cannot be used.*img004.png \\(empty file.*img007.png"):
        load_competition(single_dir, DataConfig())


def test_grayscale_and_rgba_images_become_rgb(tmp_path: Path) -> None:
    from podium.data.pixels.images import read_image

    gray = tmp_path / "g.png"
    cv2.imwrite(str(gray), np.full((8, 9), 100, np.uint8))
    rgba = tmp_path / "a.png"
    cv2.imwrite(str(rgba), np.full((8, 9, 4), 50, np.uint8))
    deep = tmp_path / "d.png"
    cv2.imwrite(str(deep), np.full((8, 9), 40000, np.uint16))
    for p in (gray, rgba, deep):
        img = read_image(p)
        assert img.shape == (8, 9, 3) and img.dtype == np.uint8


def test_missing_folder_and_unknown_layout(tmp_path: Path) -> None:
    with pytest.raises(PodiumError, match="does not exist"):
        load_competition(tmp_path / "nope", DataConfig())
    (tmp_path / "empty").mkdir()
    with pytest.raises(PodiumError, match="neither train.csv nor class folders"):
        load_competition(tmp_path / "empty", DataConfig())


def test_sample_submission_with_unknown_ids(single_dir: Path) -> None:
    sample = pd.read_csv(single_dir / "sample_submission.csv")
    sample.loc[0, "image_id"] = "not_there"
    sample.to_csv(single_dir / "sample_submission.csv", index=False)
    with pytest.raises(PodiumError, match="ids of sample_submission.csv have no image.*not_there"):
        load_competition(single_dir, DataConfig())


def test_layouts_are_tried_in_order_and_a_new_layout_is_one_registered_object(single_dir: Path) -> None:
    import shutil

    from podium.data.folders.layouts import LAYOUTS, Layout, RawLabels, detect_layout

    for cls in ("a", "b"):  # class folders beside train.csv: auto reads the CSV, the layout registered first
        (single_dir / "train" / cls).mkdir(parents=True)
        shutil.copy(single_dir / "train_images" / "img000.png", single_dir / "train" / cls / "x.png")
    assert detect_layout(single_dir, DataConfig()) == "csv"
    assert detect_layout(single_dir, DataConfig(train_csv="other.csv")) == "folders"
    assert detect_layout(single_dir, DataConfig(layout="folders")) == "folders"

    def labels_in_names(root: Path, cfg: DataConfig) -> tuple[pd.DataFrame, RawLabels]:
        files = sorted((root / "train_images").iterdir())
        table = pd.DataFrame({"id": [f.stem for f in files], "path": [str(f) for f in files]})
        return table, RawLabels(lists=[["even" if int(f.stem[3:]) % 2 == 0 else "odd"] for f in files])

    LAYOUTS.register("names")(Layout(lambda root, cfg: False, labels_in_names))
    try:
        comp = load_competition(single_dir, DataConfig(layout="names"), check=False)
    finally:
        LAYOUTS.unregister("names")
    assert comp.layout == "names" and comp.classes == ("even", "odd") and comp.targets.tolist()[:3] == [0, 1, 0]
    assert comp.test is not None and len(comp.test) == 12  # the test set is shared by every layout


def test_list_images_sorts_skips_junk_and_names_unreadable_files(tmp_path: Path) -> None:
    from podium.data.folders.files import list_images

    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    for name in ("b.png", "sub/a.png", "__MACOSX/x.png", ".hidden.png"):
        datagen.write_image(folder / name, datagen.class_image(0, rng))
    (folder / "._b.png").write_bytes(b"\x00\x05\x16\x07")  # a macOS AppleDouble file
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(PodiumError, match=r"1 image\(s\) cannot be read: broken.jpg"):
        list_images(folder)
    ids, paths = list_images(folder, check=False)
    assert ids == ["b.png", "broken.jpg", "sub/a.png"] and paths[0] == str(folder.resolve() / "b.png")
    (folder / "broken.jpg").unlink()
    assert list_images(folder)[0] == ["b.png", "sub/a.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(PodiumError, match="holds no images"):
        list_images(tmp_path / "empty")
    with pytest.raises(PodiumError, match="is a file"):
        list_images(folder / "b.png")


def _graded(root: Path, column: str, values: list[int]) -> Path:
    """A csv_single folder whose label column is ``column`` holding the integers ``values`` in turn."""
    datagen.csv_single(root, n=30)
    train = pd.read_csv(root / "train.csv", dtype=str).drop(columns=["label"])
    train[column] = [str(values[k % len(values)]) for k in range(len(train))]
    train.to_csv(root / "train.csv", index=False)
    sample = pd.read_csv(root / "sample_submission.csv", dtype=str)
    sample.rename(columns={"label": column}).assign(**{column: "0"}).to_csv(root / "sample_submission.csv",
                                                                           index=False)
    return root


@pytest.mark.parametrize(("column", "values", "task"), [
    ("diagnosis", [0, 1, 2, 3, 4], "ordinal"), ("level", [0, 1, 2], "ordinal"), ("kl_grade", [0, 1, 2, 3], "ordinal"),
    ("KLGrade", [0, 1, 2, 3], "ordinal"), ("severity", [0, 1, 2], "ordinal"),
    ("label", [0, 1, 2, 3, 4], "multiclass"),  # Cassava: not named like a grade
    ("grade", [1, 2, 3, 4], "multiclass"),  # not 0..K-1: only a suggestion
    ("grade", [0, 2, 4], "multiclass"), ("grading_leveled", [0, 1, 2], "multiclass"),
])
def test_integer_grades_in_a_grade_like_column_are_the_ordinal_task(tmp_path: Path, column: str, values: list[int],
                                                                   task: str) -> None:
    comp = load_competition(_graded(tmp_path / "g", column, values), DataConfig(), check=False)
    assert comp.task.name == task
    notes = [n for n in comp.notes if n.startswith(f"{column} holds integer grades")]
    if task == "ordinal":
        assert len(notes) == 1 and "data.task=multiclass" in notes[0] and "qwk" in notes[0]
    elif column == "grade":
        assert len(notes) == 1 and "data.task=ordinal trains" in notes[0]
    else:
        assert not notes


def test_a_named_task_wins_over_the_grades(tmp_path: Path) -> None:
    root = _graded(tmp_path / "g", "diagnosis", [0, 1, 2, 3, 4])
    comp = load_competition(root, DataConfig(task="multiclass"), check=False)
    assert comp.task.name == "multiclass" and not any("integer grades" in n for n in comp.notes)
