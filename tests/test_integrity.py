from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pandas as pd
import pytest

import corpus
import datagen
from conftest import shared_dataset
from podium.config import DataConfig, load_config
from podium.core.errors import PodiumError
from podium.data.inspection import inspect_data
from podium.data.integrity import prepare
from podium.data.training.folds import make_folds


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def conflicted(tmp_path: Path) -> Path:
    """img000 (cat) copied twice as dog and once as cat; img001 (dog) copied once as fox (a tie); one test copy."""
    root = datagen.csv_single(tmp_path / "c", n=30)
    corpus.add_duplicates(root, {"a1": ("img000", "dog"), "a2": ("img000", "dog"), "a3": ("img000", "cat"),
                                 "b1": ("img001", "fox"), "same": ("img002", "fox")})
    shutil.copyfile(root / "train_images" / "img004.png", root / "test_images" / "t003.png")  # t003 = img004 (dog)
    return root


def test_conflicts_are_reported_and_kept_by_default(conflicted: Path) -> None:
    comp, integ = prepare(conflicted, DataConfig())
    assert len(comp.train) == 35
    conflicts = {tuple(c["ids"]): c["labels"] for c in integ.conflicts}
    assert conflicts == {("img000", "a1", "a2", "a3"): ["cat", "dog", "dog", "cat"], ("img001", "b1"): ["dog", "fox"]}
    dups = integ.duplicates
    assert set(dups.loc[dups["conflict"], "id"]) == {"img000", "a1", "a2", "a3", "img001", "b1"}
    assert not dups.loc[dups["id"].isin(["img002", "same"]), "conflict"].any()  # same label: a duplicate, no conflict
    assert integ.overlap.to_dict(orient="records") == [
        {"test_id": "t003", "kind": "exact", "train_ids": "img004", "train_labels": "dog"}]


def test_conflict_policies(conflicted: Path) -> None:
    comp, integ = prepare(conflicted, DataConfig(conflicts="drop"))
    assert set(integ.dropped_conflicts) == {"img000", "a1", "a2", "a3", "img001", "b1"}
    assert len(comp.train) == 29 and len(integ.groups) == 29 and len(comp.targets) == 29
    comp, integ = prepare(conflicted, DataConfig(conflicts="majority"))
    # 2 cat vs 2 dog and dog vs fox are ties: both clusters go; a clear majority keeps one row
    assert set(integ.dropped_conflicts) == {"img000", "a1", "a2", "a3", "img001", "b1"}
    corpus.add_duplicates(conflicted, {"a4": ("img000", "dog")})
    comp, integ = prepare(conflicted, DataConfig(conflicts="majority"))
    kept = [c["kept"] for c in integ.conflicts if "a4" in c["ids"]]
    assert kept == [["a1"]] and "a1" in comp.train["id"].tolist()
    assert comp.label_strings()[comp.train["id"].tolist().index("a1")] == "dog"
    with pytest.raises(PodiumError, match="Unknown conflict policy 'vote'.*majority"):
        prepare(conflicted, DataConfig(conflicts="vote"))


def test_skip_bad_drops_bad_training_images_only(tmp_path: Path) -> None:
    root = datagen.csv_single(tmp_path / "b", n=30, ext=".jpg")
    (root / "train_images" / "img003.jpg").write_bytes(b"")
    corpus.truncate(root / "train_images" / "img007.jpg")
    with pytest.raises(PodiumError) as e:
        prepare(root, DataConfig())
    assert "2 image(s)" in str(e.value) and "img003.jpg" in str(e.value) and "img007.jpg" in str(e.value)
    comp, integ = prepare(root, DataConfig(skip_bad=True))
    assert len(comp.train) == 28 and "img003" not in comp.train["id"].tolist()
    assert [b.split(" ")[0] for b in integ.dropped_bad] == ["train_images/img003.jpg", "train_images/img007.jpg"]
    (root / "test_images" / "t001.jpg").write_text("not a picture")
    with pytest.raises(PodiumError, match="t001.jpg .*test images cannot be skipped"):
        prepare(root, DataConfig(skip_bad=True))


def test_inspect_writes_summary_duplicates_and_contact_sheet(conflicted: Path, tmp_path: Path) -> None:
    (conflicted / "train_images" / "img005.png").write_bytes(b"")
    corpus.cmyk_jpeg(conflicted / "test_images" / "t004.jpg", corpus.smooth_image(1))
    (conflicted / "test_images" / "t004.png").unlink()
    out = tmp_path / "inspect"
    summary = inspect_data(conflicted, load_config(None, [f"run.root={tmp_path / 'runs'}"]), out)
    saved = json.loads((out / "inspect.json").read_text())
    assert saved["duplicates"] == summary["duplicates"]
    assert saved["task"] == "multiclass" and saved["train_images"] == 34 and saved["test_images"] == 12
    assert saved["class_counts"] == {"cat": 11, "dog": 12, "fox": 11}  # img005 (fox) is bad
    assert saved["duplicates"]["clusters"] == 4 and saved["duplicates"]["exact_clusters"] == 4
    assert len(saved["label_conflicts"]) == 2 and len(saved["test_overlap"]) == 1
    assert saved["bad_files"] == ["train_images/img005.png (empty file (0 bytes))"]
    assert saved["color_modes"] == {"RGB": 45, "CMYK": 1}
    dups = pd.read_csv(out / "duplicates.csv")
    assert list(dups.columns) == ["cluster", "kind", "size", "split", "id", "label", "conflict"]
    assert len(dups) == 10  # 4 + 2 + 2 training rows, then img004 and its test copy
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet.shape[0] == 3 * 112  # one row per class


def test_plant_pathology_near_pairs_share_a_fold() -> None:
    root = shared_dataset("plant-pathology-2021-mini")
    comp, integ = prepare(root, DataConfig())
    pairs = {tuple(sorted(g["id"])) for _, g in integ.duplicates.groupby("cluster")}
    # the two re-shot leaves of the mini set (pHash 2 bits apart, different bytes); no byte-identical files
    assert {("aa142048eff78bf4.jpg", "aa542048ebf78bf4.jpg"), ("e8210ddefc024fec.jpg", "e8212ddeec024fec.jpg")} <= pairs
    assert (integ.duplicates["kind"] == "near").all() and not integ.conflicts and integ.overlap.empty
    folds = make_folds(comp.targets, comp.task, 5, 42, integ.groups)
    fold_of = dict(zip(comp.train["id"], folds))
    assert all(len({fold_of[i] for i in pair}) == 1 for pair in pairs)
