"""The honest CV score (podium.tasks.crossfit): the submitted decision fitted on the other parts, scored on each."""

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from podium.config import PredictConfig
from podium.inference.blends import BLENDS, cross_fit
from podium.tasks.crossfit import HonestScore, fit_parts, honest_score, inner_folds, parts_note
from podium.tasks.ordinal import fit_cut_points
from podium.tasks.task import get_task


def _grades(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Grades 0..4 and probabilities whose argmax is biased low, so that fitted cut points gain a lot."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n)
    score = np.clip(0.5 * y + rng.normal(0, 0.5, n), 0, 4)
    low = np.minimum(np.floor(score).astype(int), 3)
    p = np.zeros((n, 5))
    p[np.arange(n), low] = 1 - (score - low)
    p[np.arange(n), low + 1] += score - low
    return y, p


def _qwk(y: np.ndarray, pred: np.ndarray) -> float:
    return float(cohen_kappa_score(y, pred, weights="quadratic", labels=np.arange(5)))


def test_cut_points_are_scored_on_the_fold_they_were_not_fitted_on() -> None:
    y, p = _grades()
    folds = np.arange(len(y)) % 4
    task = get_task("ordinal").for_loss("ce", 5)
    h = honest_score(task, y, p, folds, PredictConfig(), on="4 folds")
    score = p @ np.arange(5)
    pred = np.zeros(len(y), dtype=int)
    for f in range(4):  # by hand: fit on three folds, cut the fourth
        out = folds == f
        pred[out] = np.searchsorted(np.sort(fit_cut_points(y[~out], score[~out], 5)), score[out], side="right")
    assert h.cv_score == pytest.approx(_qwk(y, pred), abs=1e-12)
    assert h.plain == pytest.approx(_qwk(y, p.argmax(axis=1)), abs=1e-12)
    all_cuts = fit_cut_points(y, score, 5)
    assert h.in_sample == pytest.approx(_qwk(y, np.searchsorted(all_cuts, score, side="right")), abs=1e-12)
    assert h.plain < h.cv_score <= h.in_sample + 1e-12  # the cut points help, a little less on unseen rows
    assert h.cross_fit["decisions"] == ["cut_points"] and len(h.cross_fit["per_part"]) == 4
    assert h.fields()["cv_score_in_sample"] == h.in_sample and HonestScore.from_fields(h.fields()) == h
    assert "cross-fitted on 4 folds" in h.beside() and f"in-sample {h.in_sample:.4f}" in h.beside()


def test_a_holdout_is_cross_fitted_on_seeded_chunks_that_keep_duplicates_together() -> None:
    y, p = _grades()
    one_fold = np.zeros(len(y), dtype=int)
    groups = np.arange(len(y)) // 2  # pairs of duplicates
    parts = fit_parts(one_fold, groups)
    assert len(set(parts)) == 5 and all(len(set(parts[groups == g])) == 1 for g in range(len(y) // 2))
    assert (parts == inner_folds(len(y), groups=groups)).all() and (fit_parts(parts) == parts).all()
    assert parts_note(one_fold, parts) == "5 seeded chunks of the validated fold"
    assert (inner_folds(len(y), groups=1000 - groups) == parts).all()  # the grouping counts, not the group ids
    assert (inner_folds(len(y), groups=np.arange(len(y))) == inner_folds(len(y))).all()
    h = honest_score(get_task("ordinal").for_loss("ce", 5), y, p, parts, PredictConfig())
    assert h.cross_fit is not None and len(h.cross_fit["per_part"]) == 5 and h.cv_score > h.plain


def test_unfitted_decisions_and_metrics_that_read_no_labels_keep_the_plain_score() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    pos = np.clip(0.2 + 0.3 * y + rng.normal(0, 0.15, 200), 0, 1)
    p = np.stack([1 - pos, pos], axis=1)
    folds = np.arange(200) % 5
    accuracy = get_task("binary").with_metric("accuracy")
    h = honest_score(accuracy, y, p, folds, PredictConfig())  # binary_threshold=argmax: nothing fitted
    assert h.cv_score == h.plain == h.in_sample == float((p.argmax(axis=1) == y).mean()) and h.cross_fit is None
    fitted = honest_score(accuracy, y, p, folds, PredictConfig(binary_threshold="metric"))
    assert fitted.cross_fit["decisions"] == ["threshold"] and fitted.plain == h.plain
    assert fitted.in_sample > fitted.plain  # positives rarely reach 0.5: a lower threshold is fitted
    auc = honest_score(get_task("binary"), y, p, folds, PredictConfig(binary_threshold="metric"))
    assert auc.cv_score == auc.plain == pytest.approx(roc_auc_score(y, pos)) and auc.cross_fit is None


def test_a_fitted_blend_fits_its_decisions_on_the_same_other_rows_as_its_weights() -> None:
    y, p = _grades(seed=2)
    noisy = np.roll(p, 1, axis=1) * 0.5 + p * 0.5
    folds = np.arange(len(y)) % 3
    task = get_task("ordinal").for_loss("ce", 5)
    blend = BLENDS.get("weights")
    result = cross_fit(blend, task, y, [p, noisy], folds)
    h = honest_score(task, y, result.honest, result.parts, PredictConfig(),
                     part_probs=result.part_probs(blend, task, [p, noisy]))
    pred = np.zeros(len(y), dtype=int)
    for f in range(3):  # by hand: weights, then cut points on the other folds' blend, applied to this fold's blend
        out = folds == f
        w = blend.fit(task, y[~out], [p[~out], noisy[~out]])
        others = (w[0] * p[~out] + w[1] * noisy[~out]) @ np.arange(5)
        cuts = fit_cut_points(y[~out], others, 5)
        pred[out] = np.searchsorted(cuts, (w[0] * p[out] + w[1] * noisy[out]) @ np.arange(5), side="right")
    assert h.cv_score == pytest.approx(_qwk(y, pred), abs=1e-12)
