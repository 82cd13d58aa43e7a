from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from podium.data.folds import make_folds, read_folds
from podium.errors import PodiumError
from podium.tasks import get_task


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
