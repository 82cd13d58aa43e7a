"""``podium predict RUN_OR_ENSEMBLE --data COMP_DIR --out FILE``: a Kaggle code competition's inference, with the run,
ensemble and data folders read-only and a hidden test set (other ids, more images, its own sample) swapped in."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import datagen
import podium
from podium.core.errors import PodiumError


def hidden_test_set(data: Path, root: Path, n: int = 20, seed: int = 5) -> Path:
    """A copy of the competition folder ``data`` whose test images and sample submission are replaced by another,
    larger set (other ids, shuffled order), as Kaggle swaps in the hidden test set."""
    shutil.copytree(data, root, ignore=shutil.ignore_patterns("test_images", "sample_submission.csv"))
    rng = np.random.default_rng(seed)
    ids = [f"hidden_{i:04d}" for i in rng.permutation(n)]
    for k, i in enumerate(ids):
        datagen.write_image(root / "test_images" / f"{i}.png", datagen.class_image(k % 3, rng))
    pd.DataFrame({"image_id": ids, "label": "cat"}).to_csv(root / "sample_submission.csv", index=False)
    return root


def snapshot(*folders: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``folders`` with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for f in folders for p in sorted(f.rglob("*"))}


@contextmanager
def read_only(*folders: Path) -> Iterator[None]:
    """Make ``folders`` read-only (as /kaggle/input is) and check that nothing below them changed (root ignores the
    permission bits, so the snapshot is what proves it)."""
    before = snapshot(*folders)
    modes = {p: p.stat().st_mode for f in folders for p in [f, *f.rglob("*")]}
    for p in modes:
        p.chmod(modes[p] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    assert snapshot(*folders) == before


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny runs on one single-label folder, an ensemble of them, and a hidden test set of that folder."""
    from accelerate.state import AcceleratorState, GradientState

    tmp = tmp_path_factory.mktemp("offline")
    data = datagen.csv_single(tmp / "comp")
    base = (*datagen.TINY, f"run.root={tmp / 'runs'}")
    out = {"data": data, "hidden": hidden_test_set(data, tmp / "hidden")}
    out["a"] = podium.train(data, overrides=[*base, "run.name=a"]).path
    out["b"] = podium.train(data, overrides=[*base, "run.name=b", "model.resize=crop"]).path
    out["ens"] = podium.ensemble(out["a"], out["b"], blend="mean", name="ens").path
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return out


def test_run_predicts_its_own_test_set_as_training_did(trained: dict[str, Path], tmp_path: Path) -> None:
    with read_only(trained["a"], trained["data"]):
        sub = podium.predict(trained["a"], data=trained["data"], out=tmp_path / "submission.csv")
    assert (tmp_path / "submission.csv").read_bytes() == (trained["a"] / "submission.csv").read_bytes()
    assert list(sub.columns) == ["image_id", "label"]


def test_run_predicts_a_hidden_test_set_from_read_only_folders(trained: dict[str, Path], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the Kaggle working folder: the default --out lands here
    with read_only(trained["a"], trained["hidden"]):
        sub = podium.predict(trained["a"], data=trained["hidden"])
    sample = pd.read_csv(trained["hidden"] / "sample_submission.csv", dtype=str)
    assert sub["image_id"].tolist() == sample["image_id"].tolist() and len(sub) == 20
    assert set(sub["label"]) <= {"cat", "dog", "fox"}
    assert (tmp_path / "submission.csv").is_file() and os.listdir(tmp_path) == ["submission.csv"]


def test_ensemble_predicts_new_data_through_its_members(trained: dict[str, Path], tmp_path: Path) -> None:
    with read_only(trained["ens"], trained["a"], trained["b"], trained["data"], trained["hidden"]):
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
