"""Fitted decision thresholds: per-class multilabel thresholds and the binary label threshold."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from podium.config import PodiumConfig, PredictConfig, merge
from podium.pipeline import train
from podium.tasks.task import get_task
from podium.tasks.thresholds import BINARY_RULES, THRESHOLD_MODES, decode_multilabel, global_threshold, sample_f1


def _multilabel(seed: int = 0, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Classes whose probabilities are calibrated differently (one runs low, one high), so one threshold is not best."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 4)) < [0.3, 0.2, 0.4, 0.1]).astype(int)
    scale = np.array([0.35, 1.0, 0.8, 0.6])
    shift = np.array([0.0, 0.0, 0.15, 0.0])
    p = np.clip((0.2 + 0.6 * y) * scale + shift + rng.normal(0, 0.12, (n, 4)), 0, 1)
    return y, p


@pytest.mark.parametrize("mode", THRESHOLD_MODES.names())
def test_threshold_modes_never_leave_a_row_empty(mode: str) -> None:
    y, p = _multilabel()
    t = THRESHOLD_MODES.get(mode)(y, p)
    assert np.size(t) in (1, 4)
    assert (decode_multilabel(p, t).sum(axis=1) > 0).all()
    task = get_task("multilabel")
    decisions = task.fit_decisions(y, p, PredictConfig(threshold_mode=mode))
    assert all(task.decode(p * 0.01, decisions, ("a", "b", "c", "d")))  # even when every probability is tiny


def test_per_class_thresholds_beat_or_equal_global_in_sample() -> None:
    y, p = _multilabel()
    g = sample_f1(y, p, global_threshold(y, p))
    per = THRESHOLD_MODES.get("per_class")(y, p)
    assert sample_f1(y, p, per) >= g
    assert sample_f1(y, p, per) > g + 0.005  # the miscalibrated classes get their own thresholds
    assert per[0] < per[1]  # the class whose probabilities run low gets the lower threshold


def test_binary_rules_fit_a_label_threshold() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.3).astype(int)
    pos = np.clip(0.15 + 0.3 * y + rng.normal(0, 0.1, 400), 0, 1)  # positives rarely reach 0.5
    p = np.stack([1 - pos, pos], axis=1)
    task = get_task("binary")
    assert task.fit_decisions(y, p, PredictConfig()) == {}  # argmax by default
    for rule in ("accuracy", "f1"):
        decisions = task.fit_decisions(y, p, PredictConfig(binary_threshold=rule))
        assert decisions["threshold"] < 0.5
        report = task.decision_report(y, p, decisions)
        assert report[f"{rule}_fitted"] > report[f"{rule}_at_0.5"]
    assert BINARY_RULES.get("argmax")(y, p) is None


def test_multilabel_run_with_per_class_thresholds(multilabel_dir: Path, tiny: tuple[str, ...]) -> None:
    run = train(multilabel_dir, merge(PodiumConfig(), [*tiny, "predict.threshold_mode=per_class"]))
    t = run.decisions["threshold"]
    assert isinstance(t, list) and len(t) == 4 and run.load_best(0).decisions == run.decisions
    scores = run.metrics["decision_scores"]
    assert scores["sample_f1_fitted"] >= scores["sample_f1_global"]
    sub = pd.read_csv(run.submission_path, keep_default_na=False)
    assert (sub["labels"].str.len() > 0).all()


def test_the_cv_score_is_the_cross_fitted_sample_f1_of_the_submitted_threshold(multilabel_dir: Path,
                                                                              tiny: tuple[str, ...]) -> None:
    """Recomputed from oof.csv by hand: the global threshold of the grid that maximises sample F1 on the other
    fold's rows decodes this fold's rows (an empty row gets its most likely class), then sample F1 (sklearn)."""
    from sklearn.metrics import f1_score

    run = train(multilabel_dir, merge(PodiumConfig(), [*tiny, "cv.metric=f1_samples"]))
    oof = pd.read_csv(run.path / "oof.csv", keep_default_na=False, float_precision="round_trip")
    classes = ["healthy", "rust", "scab", "spot"]
    y = np.array([[c in labels.split() for c in classes] for labels in oof["label"]], dtype=int)
    p, folds = oof[classes].to_numpy(), oof["fold"].to_numpy()
    grid = np.round(np.arange(0.05, 0.951, 0.025), 3)

    def decode(q: np.ndarray, t: float) -> np.ndarray:
        out = (q >= t).astype(int)
        empty = out.sum(axis=1) == 0
        out[empty, q[empty].argmax(axis=1)] = 1
        return out

    def f1(truth: np.ndarray, pred: np.ndarray) -> float:
        return float(f1_score(truth, pred, average="samples", zero_division=0))

    pred = np.zeros_like(y)
    for f in np.unique(folds):
        out = folds == f
        best = grid[int(np.argmax([f1(y[~out], decode(p[~out], t)) for t in grid]))]
        pred[out] = decode(p[out], best)
    m = run.metrics
    assert m["cv_score"] == pytest.approx(f1(y, pred), abs=1e-9)
    assert m["cv_score_plain"] == pytest.approx(f1(y, decode(p, 0.5)), abs=1e-9)
    assert m["cv_score_in_sample"] == pytest.approx(f1(y, decode(p, run.decisions["threshold"])), abs=1e-9)
    assert m["cross_fit"]["decisions"] == ["threshold"] and len(m["cross_fit"]["per_part"]) == 2


def test_a_run_with_no_fitted_decision_keeps_the_plain_cv_score(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    import datagen

    data = datagen.csv_single(tmp_path / "data", n=32, classes=("cat", "dog"), n_test=4)
    run = train(data, merge(PodiumConfig(), [*tiny, "cv.metric=accuracy"]))  # binary_threshold=argmax
    m = run.metrics
    assert run.decisions == {} and m["cross_fit"] is None
    assert m["cv_score"] == m["cv_score_plain"] == m["cv_score_in_sample"] == m["overall"]["accuracy"]
