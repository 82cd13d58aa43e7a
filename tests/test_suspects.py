"""Suspect labels from out-of-fold probabilities: flipped labels of a learnable set are found, ordinal neighbours rank
below far grades, multilabel sets get suspects too."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from podium.tasks.suspects import multilabel_issues, ordinal_issues, single_label_issues


def _blobs(n: int = 600, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    return rng.normal(0, 1.0, (n, 6)) + np.eye(6)[y] * 3.0, y


def _flip(y: np.ndarray, share: float, k: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    flipped = rng.random(len(y)) < share
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, k, flipped.sum())) % k
    return noisy, flipped


def test_flipped_labels_are_found() -> None:
    x, y = _blobs()
    noisy, flipped = _flip(y, 0.2, 3)
    oof = cross_val_predict(LogisticRegression(max_iter=500), x, noisy, cv=5, method="predict_proba")
    issues = single_label_issues(noisy, oof)
    found = issues.suspect
    precision = (found & flipped).sum() / found.sum()
    recall = (found & flipped).sum() / flipped.sum()
    assert precision > 0.8 and recall > 0.8, (precision, recall)
    # the suggestion restores most true labels, and suspects rank below clean rows
    assert (issues.suggested[found & flipped] == y[found & flipped]).mean() > 0.9
    assert issues.quality[flipped].mean() < issues.quality[~flipped].mean()


def test_a_clean_set_has_few_suspects() -> None:
    x, y = _blobs(seed=3)
    oof = cross_val_predict(LogisticRegression(max_iter=500), x, y, cv=5, method="predict_proba")
    assert single_label_issues(y, oof).suspect.mean() < 0.05


def test_ordinal_neighbours_rank_below_far_grades() -> None:
    probs = np.array([[0.05, 0.9, 0.05, 0.0, 0.0]] * 2)  # the models say grade 1
    issues = ordinal_issues(np.array([2, 4]), probs)  # given: a neighbour, and a far grade
    assert issues.quality[0] > issues.quality[1]
    assert list(issues.suggested) == [1, 1]


def test_multilabel_suspects() -> None:
    rng = np.random.default_rng(0)
    n, k = 500, 4
    y = (rng.random((n, k)) < 0.3).astype(int)
    x = rng.normal(0, 0.8, (n, k)) + y * 3.0
    noisy = y.copy()
    flipped = rng.random(n) < 0.15
    cls = rng.integers(0, k, n)
    noisy[flipped, cls[flipped]] = 1 - noisy[flipped, cls[flipped]]
    oof = np.stack([cross_val_predict(LogisticRegression(max_iter=500), x, noisy[:, c], cv=5,
                                      method="predict_proba")[:, 1] for c in range(k)], axis=1)
    issues = multilabel_issues(noisy, oof)
    found = issues.suspect
    assert (found & flipped).sum() / found.sum() > 0.7 and (found & flipped).sum() / flipped.sum() > 0.7
    assert issues.suggested.shape == (n, k)
