from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import corpus
import datagen
from podium.config import DataConfig
from podium.core.errors import PodiumError
from podium.data.integrity import prepare
from podium.data.training.folds import check_folds, check_stratifiable, make_folds, read_folds
from podium.tasks.task import get_task


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_CACHE", str(tmp_path / "cache"))


def _spans(folds: np.ndarray, groups: np.ndarray) -> int:
    return int((pd.DataFrame({"g": groups, "f": folds}).groupby("g")["f"].nunique() > 1).sum())


def test_duplicate_clusters_stay_in_one_fold_single_label(tmp_path: Path) -> None:
    root = datagen.csv_single(tmp_path / "d", n=60)
    corpus.add_duplicates(root, {f"copy{i}": (f"img{i:03d}", "cat" if i % 3 == 0 else "dog") for i in range(0, 30, 2)})
    corpus.add_duplicates(root, {f"near{i}": (f"img{i:03d}", "fox") for i in range(31, 45, 3)}, near=True)
    comp, integ = prepare(root, DataConfig())
    dups = integ.duplicates
    assert set(dups["kind"]) == {"exact", "near"}
    assert dups["cluster"].nunique() == 15 + 5
    ids = comp.train["id"].tolist()
    for seed in range(5):
        folds = make_folds(comp.targets, comp.task, 5, seed, integ.groups)
        check_folds(folds, integ.groups, ids)
        fold_of = dups["id"].map(dict(zip(ids, folds)))
        assert fold_of.groupby(dups["cluster"]).nunique().max() == 1
        # without groups the same data does split clusters: the check is not vacuous
        plain = make_folds(comp.targets, comp.task, 5, seed)
        assert _spans(plain, integ.groups) > 0
        with pytest.raises(PodiumError, match="split .* duplicate cluster"):
            check_folds(plain, integ.groups, ids)


def test_duplicate_clusters_stay_in_one_fold_multilabel(tmp_path: Path) -> None:
    root = datagen.csv_multilabel(tmp_path / "m", n=60)
    corpus.add_duplicates(root, {f"c{i}.jpg": (f"m{i:03d}", "rust scab") for i in range(0, 40, 3)}, folder="images")
    comp, integ = prepare(root, DataConfig())
    assert comp.task.multilabel and integ.duplicates["cluster"].nunique() == 14
    folds = make_folds(comp.targets, comp.task, 4, 0, integ.groups)
    check_folds(folds, integ.groups, comp.train["id"].tolist())
    assert _spans(folds, integ.groups) == 0 and set(folds.tolist()) == {0, 1, 2, 3}
    # still stratified: every label appears in every validation fold
    for k in range(4):
        assert (comp.targets[folds == k].sum(axis=0) > 0).all()


def test_user_group_column_joins_duplicate_clusters(tmp_path: Path) -> None:
    root = datagen.csv_single(tmp_path / "g", n=48)
    df = pd.read_csv(root / "train.csv")
    df["patient_id"] = [f"p{i // 4}" for i in range(len(df))]  # 12 patients of 4 images
    df.loc[5, "patient_id"] = ""  # an empty cell groups nothing
    df.to_csv(root / "train.csv", index=False)
    corpus.add_duplicates(root, {"dup": ("img010", "cat")})  # p2's image copied, its row has no patient
    comp, integ = prepare(root, DataConfig(group_col="patient_id"))
    assert comp.classes == ("cat", "dog", "fox")  # patient_id is not read as a label column
    folds = make_folds(comp.targets, comp.task, 3, 0, integ.groups)
    fold_of = dict(zip(comp.train["id"], folds))
    for p in range(12):
        members = [f"img{i:03d}" for i in range(4 * p, 4 * p + 4) if i != 5]
        assert len({fold_of[m] for m in members}) == 1
    assert fold_of["dup"] == fold_of["img010"] == fold_of["img008"]
    with pytest.raises(PodiumError, match="no column 'site'"):
        prepare(root, DataConfig(group_col="site"))


def test_rare_classes() -> None:
    task = get_task("multiclass")
    y = np.array([0] * 10 + [1] * 10 + [2] * 2)
    folds = make_folds(y, task, 5, 0)  # 2 images of class 2: documented to land in 2 folds
    assert len(set(folds[y == 2].tolist())) == 2
    check_stratifiable(y, task, ("a", "b", "c"), [f"i{i}" for i in range(len(y))])
    with pytest.raises(PodiumError, match=r"single training image.*'c' \(image i20\)"):
        check_stratifiable(np.r_[y[:-1]], task, ("a", "b", "c"), [f"i{i}" for i in range(len(y))])
    with pytest.raises(PodiumError, match="only 3 groups"):
        make_folds(y, task, 5, 0, groups=np.arange(len(y)) % 3)


def test_stratified_and_seeded() -> None:
    y = np.array([0] * 50 + [1] * 30 + [2] * 20)
    folds = make_folds(y, get_task("multiclass"), 5, seed=1)
    assert set(folds) == set(range(5))
    for k in range(5):
        assert np.bincount(y[folds == k]).tolist() == [10, 6, 4]
    assert (make_folds(y, get_task("multiclass"), 5, seed=1) == folds).all()
    assert not (make_folds(y, get_task("multiclass"), 5, seed=2) == folds).all()


def test_multilabel_stratified() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((300, 5)) < [0.5, 0.2, 0.1, 0.05, 0.3]).astype(int)
    folds = make_folds(y, get_task("multilabel"), 3, seed=0)
    rates = np.stack([y[folds == k].mean(0) for k in range(3)])
    assert np.abs(rates - y.mean(0)).max() < 0.03


def test_bad_k() -> None:
    with pytest.raises(PodiumError, match="between 2 and"):
        make_folds(np.array([0, 1, 0]), get_task("binary"), 5, 0)


def test_read_folds_checks_ids(tmp_path: Path) -> None:
    path = tmp_path / "folds.csv"
    pd.DataFrame({"id": ["a", "b", "c", "d"], "fold": [0, 1, 0, 1]}).to_csv(path, index=False)
    assert read_folds(path, ["d", "c", "b", "a"], 2).tolist() == [1, 0, 1, 0]
    with pytest.raises(PodiumError, match="missing ids e"):
        read_folds(path, ["a", "b", "c", "e"], 2)
    with pytest.raises(PodiumError, match="cv.folds=3"):
        read_folds(path, ["a", "b", "c", "d"], 3)


# ------------------------------------------------------------------------------- more folds than the data allows

def _fold_error(*args: object, **kw: object) -> str:
    with pytest.raises(PodiumError) as e:
        make_folds(*args, **kw)  # type: ignore[arg-type]
    assert "\n" not in str(e.value)
    return str(e.value)


def test_too_many_folds_single_label_names_the_largest_class() -> None:
    task, classes = get_task("multiclass"), ("cat", "dog", "fox")
    y = np.repeat([0, 1, 2], 16)  # every class has 16: sklearn would raise a ValueError for K=20
    msg = _fold_error(y, task, 20, 0, classes=classes)
    assert msg == ("cv.folds=20 is too many: a stratified split needs a class with at least 20 images, and the "
                   "largest, 'cat', has 16 (like every class); use cv.folds=16 or fewer.")
    msg = _fold_error(np.r_[np.zeros(16, int), np.ones(12, int), np.full(5, 2)], task, 20, 0, classes=classes)
    assert "the largest, 'cat', has 16 (the smallest, 'fox', 5); use cv.folds=16 or fewer." in msg
    assert "class 0, has 16" in _fold_error(y, task, 20, 0)  # without names (the engine passes none today)
    assert len(set(make_folds(y, task, 16, 0).tolist())) == 16  # the largest usable K works
    # a class smaller than K is allowed (it sits in fewer folds) as long as one class has K images
    assert len(set(make_folds(np.r_[np.zeros(20, int), np.ones(16, int)], task, 20, 0).tolist())) == 20


def test_too_many_folds_multilabel_and_groups() -> None:
    ml, classes = get_task("multilabel"), ("a", "b", "c", "d")
    y = np.eye(4, dtype=int)[np.arange(24) % 4]
    y[:8, 1] = 1  # label b on 10 images, the others on 6
    msg = _fold_error(y, ml, 30, 0, classes=classes)
    assert msg.startswith("cv.folds=30 is too many: there are only 24 training images")
    assert "the rarest label, 'a', is on 6 images; use cv.folds=24 or fewer." in msg
    groups = np.arange(24) // 3  # 8 groups
    msg = _fold_error(y, ml, 10, 0, groups, classes=classes)
    assert "only 8 groups (duplicate clusters and data.group_col)" in msg and msg.endswith("cv.folds=8 or fewer.")
    assert set(make_folds(y, ml, 8, 0, groups).tolist()) == set(range(8))
    mc = get_task("multiclass")
    labels = np.arange(24) % 3
    assert _fold_error(labels, mc, 10, 0, groups).endswith("use cv.folds=8 or fewer.")
    assert _fold_error(labels, mc, 9, 0, np.zeros(24)).endswith("this data cannot be split into folds.")
    assert set(make_folds(labels, mc, 8, 0, groups).tolist()) == set(range(8))


def test_check_stratifiable_takes_the_fold_count() -> None:
    task, classes = get_task("binary"), ("no", "yes")
    y = np.repeat([0, 1], 6)
    ids = [f"i{i}" for i in range(12)]
    check_stratifiable(y, task, classes, ids)  # the old call: no fold count, no check of it
    check_stratifiable(y, task, classes, ids, k=6)
    with pytest.raises(PodiumError, match=r"^cv\.folds=7 is too many: .* the largest, 'no', has 6 \(like every"):
        check_stratifiable(y, task, classes, ids, k=7)
    with pytest.raises(PodiumError, match=r"only 3 groups"):
        check_stratifiable(y, task, classes, ids, k=4, groups=np.arange(12) % 3)
