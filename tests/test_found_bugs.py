"""Found while trying folders as a new user would (issue 21): an extra folder named ``train``, a symbolic link to
itself inside a class folder."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

import datagen
from podium.config import PodiumConfig, load_config, merge
from podium.data.folders.files import ignored_files
from podium.data.inspection import inspect_data


def test_an_extra_folder_named_train_never_enters_the_oof(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    from podium.pipeline import train

    comp = datagen.csv_single(tmp_path / "comp", n=48, n_test=4)
    extra = datagen.folders(tmp_path / "more" / "train", per_class=4, seed=7, classes=("cat", "dog", "fox"))
    run = train(comp, merge(PodiumConfig(), [*tiny, f"data.extra={extra}"]))
    folds = pd.read_csv(run.folds_path)
    extra_rows = folds[folds["source"] != "train"]
    assert len(extra_rows) == 12 and (extra_rows["fold"] == -1).all()
    assert set(extra_rows["source"]) == {"extra:train"}
    assert len(run.oof) == 48 and run.metrics["oof_rows"] == 48  # 48, not 60: the CV score is the competition's


def test_inspect_survives_a_symlink_to_itself(tmp_path: Path) -> None:
    root = datagen.folders(tmp_path / "folders", per_class=6)
    loop = root / "train" / "early" / "loop.png"
    os.symlink(loop, loop)  # a link to itself: ELOOP on stat
    ignored = ignored_files(root, [str(p) for p in (root / "train" / "early").glob("*.jpg")])
    assert ignored["broken_link"]["examples"] == ["train/early/loop.png"]
    summary = inspect_data(root, load_config(None, [f"run.root={tmp_path / 'runs'}"]), tmp_path / "inspect")
    assert summary["train_images"] == 18
