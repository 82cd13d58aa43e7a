"""Kaggle folders as downloaded whose labels are not in train.csv: a labels CSV under another name (APTOS 2015's
trainLabels.csv, ids without extensions, TIFF images) and labels in file names (Dogs vs. Cats' train/cat.0.jpg,
<label>_<n>.png, data.label_pattern). Each loads with no data flags, trains and writes the sample's format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import datagen
from podium.config import DataConfig, PodiumConfig, load_config, merge
from podium.core.errors import PodiumError
from podium.data.folders.extra import with_extra
from podium.data.folders.ingest import load_competition
from podium.data.inspection import inspect_data

CLASSES = ("0", "1", "2")


def _test_set(root: Path, folder: str, ext: str, rng: np.random.Generator, n: int = 6) -> None:
    """n test images and a sample submission listing them (id,label), ids without the extension."""
    ids = [str(k + 1) for k in range(n)]
    for k, i in enumerate(ids):
        datagen.write_image(root / folder / f"{i}{ext}", datagen.class_image(k % 2, rng))
    pd.DataFrame({"id": ids, "label": "x"}).to_csv(root / "sample_submission.csv", index=False)


def labels_csv_replica(root: Path, name: str = "trainLabels.csv", seed: int = 0) -> Path:
    """APTOS 2015: train/<id>.tif, trainLabels.csv (image,level) with ids without the extension."""
    rng = np.random.default_rng(seed)
    ids = [f"{k}_{'left' if k % 2 else 'right'}" for k in range(24)]
    levels = [CLASSES[k % 3] for k in range(24)]
    for i, level in zip(ids, levels):
        datagen.write_image(root / "train" / f"{i}.tif", datagen.class_image(int(level), rng))
    pd.DataFrame({"image": ids, "level": levels}).to_csv(root / name, index=False)
    _test_set(root, "test", ".tif", rng)
    return root


def names_replica(root: Path, names: list[str], folder: str = "train", seed: int = 0) -> Path:
    """Labels in file names: ``names`` as (label, file name) pairs written under ``folder``, and a test set."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(names):
        datagen.write_image(root / folder / name, datagen.class_image(k % 2, rng))
    _test_set(root, "test", ".png", rng)
    return root


def dogs_vs_cats(root: Path) -> Path:
    return names_replica(root, [f"{('cat', 'dog')[k % 2]}.{k // 2}.png" for k in range(24)])


def _train_and_submit(root: Path, tiny: tuple[str, ...], *flags: str) -> None:
    from podium.pipeline import train

    run = train(root, merge(PodiumConfig(), [*tiny, "predict.tta=identity", *flags]))
    sub = pd.read_csv(run.submission_path, dtype=str, keep_default_na=False)
    sample = pd.read_csv(root / "sample_submission.csv", dtype=str, keep_default_na=False)
    assert tuple(sub.columns) == tuple(sample.columns) and sub["id"].tolist() == sample["id"].tolist()


def test_a_labels_csv_under_another_name_with_tiff_images_trains(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    root = labels_csv_replica(tmp_path / "aptos2015")
    comp = load_competition(root, DataConfig())
    assert comp.layout == "csv" and comp.classes == CLASSES and len(comp.train) == 24
    assert comp.train["path"].str.endswith(".tif").all() and comp.test is not None and len(comp.test) == 6
    assert any("labels CSV trainLabels.csv" in n and "data.train_csv=NAME" in n for n in comp.notes)
    # the same rule for a data.extra folder: its trainLabels.csv is found as well
    extra = labels_csv_replica(tmp_path / "aptos2015_extra", seed=1)
    merged = with_extra(load_competition(root, DataConfig(), check=False), DataConfig(extra=(str(extra),)))
    assert len(merged.train) == 48 and merged.train["id"].str.startswith("extra:aptos2015_extra/").sum() == 24
    _train_and_submit(root, tiny)


def test_the_sample_and_test_listings_are_never_the_labels_and_two_fitting_csvs_are_a_note(tmp_path: Path) -> None:
    root = labels_csv_replica(tmp_path / "two", name="trainLabels.csv")
    table = pd.read_csv(root / "trainLabels.csv", dtype=str)
    table.assign(level=table["level"].map({"0": "2", "1": "1", "2": "0"})).to_csv(root / "labels.csv", index=False)
    sample = pd.read_csv(root / "sample_submission.csv", dtype=str)
    sample.assign(label="0").to_csv(root / "holdout.csv", index=False)  # test ids with labels: never the labels,
    for i in sample["id"]:  # not even where the test images also lie among the training images
        (root / "train" / f"{i}.tif").write_bytes((root / "test" / f"{i}.tif").read_bytes())
    sample.assign(label="0").to_csv(root / "test_labels.csv", index=False)
    comp = load_competition(root, DataConfig(), check=False)
    note = next(n for n in comp.notes if n.startswith("labels CSV"))
    assert "labels CSV labels.csv" in note and "trainLabels.csv also fit" in note and "holdout" not in note
    assert "data.train_csv=NAME" in note
    chosen = load_competition(root, DataConfig(train_csv="trainLabels.csv"), check=False)
    assert not any(n.startswith("labels CSV") for n in chosen.notes)
    assert [comp.classes[t] for t in comp.targets] == [str(2 - int(chosen.classes[t])) for t in chosen.targets]
    (root / "labels.csv").unlink()
    (root / "trainLabels.csv").unlink()
    with pytest.raises(PodiumError, match="has neither train.csv"):  # holdout.csv names only test images
        load_competition(root, DataConfig(), check=False)


def test_labels_in_dogs_vs_cats_file_names_train(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    root = dogs_vs_cats(tmp_path / "dogs-vs-cats")
    comp = load_competition(root, DataConfig())
    assert comp.layout == "filenames" and comp.classes == ("cat", "dog")
    assert comp.targets.tolist()[:4] == [0, 0, 0, 0]  # sorted names: cat.0, cat.1, ...
    assert comp.train["id"].iloc[0] == "train/cat.0.png"
    assert any("labels from file names in train/" in n and "data.label_pattern=REGEX" in n for n in comp.notes)
    decided = "\n".join(inspect_data(root, load_config(None, list(tiny)), tmp_path / "inspect")["decided"])
    assert "layout filenames" in decided and "labels from file names in train/ by the default rule" in decided
    _train_and_submit(root, tiny)


def test_labels_before_an_underscore_train(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    names = [f"{('healthy', 'rust')[k % 2]}_{k}.png" for k in range(24)]
    root = names_replica(tmp_path / "leaves", names, folder="train_images")
    comp = load_competition(root, DataConfig(), check=False)
    assert comp.layout == "filenames" and comp.classes == ("healthy", "rust")
    _train_and_submit(root, tiny)


def test_a_label_pattern_reads_labels_with_underscores(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    names = [f"{('leaf_rust', 'leaf_spot')[k % 2]}_{k}.png" for k in range(24)]
    root = names_replica(tmp_path / "pattern", names)
    with pytest.raises(PodiumError, match="has neither train.csv"):  # by default every label would be "leaf"
        load_competition(root, DataConfig(), check=False)
    comp = load_competition(root, DataConfig(label_pattern=r"^(.+)_\d+\.png$"), check=False)
    assert comp.layout == "filenames" and comp.classes == ("leaf_rust", "leaf_spot")
    _train_and_submit(root, tiny, r"data.label_pattern=^(.+)_\d+\.png$")


def test_a_name_without_a_label_is_one_line_naming_the_file_and_the_key(tmp_path: Path) -> None:
    root = dogs_vs_cats(tmp_path / "bad")
    datagen.write_image(root / "train" / "weird.png", datagen.class_image(0, np.random.default_rng(0)))
    with pytest.raises(PodiumError, match=r"has neither train.csv"):  # auto: one name without a label, not detected
        load_competition(root, DataConfig(), check=False)
    with pytest.raises(PodiumError, match=r"^train/weird.png does not match the default rule .*data.label_pattern="):
        load_competition(root, DataConfig(label_from="name"), check=False)
    with pytest.raises(PodiumError, match=r"train/cat.0.png does not match data.label_pattern='\^\(dog\)'"):
        load_competition(root, DataConfig(label_pattern="^(dog)"), check=False)
    with pytest.raises(PodiumError, match="has 0 capture groups; give it exactly one"):
        load_competition(root, DataConfig(label_pattern="^dog"), check=False)
