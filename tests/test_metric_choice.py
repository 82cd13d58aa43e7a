"""cv.metric: the registry's directions and tasks, checks at config load, user metrics, the best epoch, decisions
fitted to the chosen metric, and a run scored by it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from podium.config import PodiumConfig, PredictConfig, load_config, merge
from podium.core.errors import PodiumError
from podium.engine.fold import selection_key
from podium.tasks.metrics import METRICS, fit_decisions, get_metric, metric_key, resolve_metric, score
from podium.tasks.task import get_task
from podium.validation import validate

ISSUE_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "f1_micro", "f1_weighted", "f1_samples", "roc_auc",
                 "mean_auc", "log_loss", "qwk", "mae")


def test_registry_holds_the_competition_metrics_with_their_direction() -> None:
    assert set(ISSUE_METRICS) <= set(METRICS)
    assert [n for n in ISSUE_METRICS if not METRICS.get(n).greater_is_better] == ["log_loss", "mae"]
    assert metric_key("log_loss", 0.2) > metric_key("log_loss", 0.3) and metric_key("qwk", 0.3) > metric_key("qwk", .2)
    assert metric_key("accuracy", float("nan")) == -np.inf


def test_single_label_metrics_values() -> None:
    y = np.array([0, 1, 2, 2])
    p = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.2, 0.2]])
    assert METRICS.get("balanced_accuracy")(y, p) == pytest.approx((1 + 1 + 0.5) / 3)
    assert METRICS.get("mae")(y, p) == pytest.approx(0.5)
    assert METRICS.get("f1_micro")(y, p) == pytest.approx(0.75)
    assert 0.5 < METRICS.get("mean_auc")(y, p) <= 1  # one-vs-rest columns of single-label targets (PP2020)


def test_multilabel_f1_variants_read_the_threshold() -> None:
    y = np.array([[1, 0], [0, 1], [1, 1]])
    p = np.array([[0.6, 0.2], [0.3, 0.4], [0.7, 0.45]])
    for name in ("f1_micro", "f1_macro", "f1_samples"):
        assert METRICS.get(name)(y, p, 0.35) > METRICS.get(name)(y, p, 0.5)
    assert METRICS.get("f1_samples")(y, p, 0.4) == METRICS.get("sample_f1")(y, p, 0.4)


@pytest.mark.parametrize(("task", "metric"), [("multilabel", "qwk"), ("multiclass", "f1_samples"),
                                               ("multiclass", "roc_auc"), ("multilabel", "mae")])
def test_a_metric_that_does_not_fit_the_named_task_is_one_line_at_load(task: str, metric: str) -> None:
    with pytest.raises(PodiumError, match=f"cv.metric={metric} does not fit the {task} task") as e:
        validate(load_config(None, [f"data.task={task}", f"cv.metric={metric}"]))
    assert "\n" not in str(e.value)


def test_unknown_metric_names_the_choices() -> None:
    with pytest.raises(PodiumError, match="Did you mean 'f1_micro'"):
        validate(load_config(None, ["cv.metric=f1_mikro"]))


def test_a_metric_that_does_not_fit_the_detected_task_is_refused_by_resolve() -> None:
    assert resolve_metric(get_task("multiclass"), "auto").primary == "accuracy"
    task = resolve_metric(get_task("multilabel"), "f1_micro")
    assert task.primary == "f1_micro" and task.metrics[0] == "f1_micro" and "mean_auc" in task.metrics
    with pytest.raises(PodiumError, match="does not fit the multilabel task; it fits binary, multiclass, ordinal"):
        resolve_metric(get_task("multilabel"), "qwk")


def _write_user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mymetrics.py").write_text(
        "import numpy as np\n"
        "def brier(y, p):\n    return float(np.mean((np.eye(p.shape[1])[y] - p) ** 2))\n"
        "def hit(y, p):\n    return float((p.argmax(1) == y).mean())\n"
        "hit.greater_is_better = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mymetrics", raising=False)


def test_user_metric_with_declared_direction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_user_module(tmp_path, monkeypatch)
    y, p = np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]])
    brier = get_metric("mymetrics:brier:min")
    assert not brier.greater_is_better and brier(y, p) == pytest.approx(0.025)
    assert get_metric("mymetrics:hit").greater_is_better
    assert get_metric(f"{tmp_path / 'mymetrics.py'}:hit")(y, p) == 1.0  # a file path works without PYTHONPATH
    cfg = load_config(None, ["cv.metric=mymetrics:brier:min"])
    assert cfg.cv.metric == "mymetrics:brier:min"
    task = resolve_metric(get_task("binary"), "mymetrics:brier:min")
    assert score(task, y, p)["mymetrics:brier:min"] == pytest.approx(0.025)


def test_user_metric_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_user_module(tmp_path, monkeypatch)
    with pytest.raises(PodiumError, match="declare the metric's direction"):
        validate(load_config(None, ["cv.metric=mymetrics:brier"]))
    with pytest.raises(PodiumError, match="cannot import nosuchmodule"):
        validate(load_config(None, ["cv.metric=nosuchmodule:f:max"]))
    with pytest.raises(PodiumError, match="has no function 'nothere'"):
        validate(load_config(None, ["cv.metric=mymetrics:nothere:max"]))


def test_best_epoch_follows_the_metric_direction() -> None:
    epochs = [{"log_loss": 0.9, "accuracy": 0.7, "val_loss": 0.9}, {"log_loss": 0.5, "accuracy": 0.6, "val_loss": .5}]
    assert max(range(2), key=lambda e: selection_key(epochs[e], "log_loss")) == 1
    assert max(range(2), key=lambda e: selection_key(epochs[e], "accuracy")) == 0


def test_multilabel_threshold_is_fitted_for_the_chosen_metric() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random((300, 6)) < np.array([0.6, 0.3, 0.1, 0.05, 0.05, 0.02])).astype(int)
    y[y.sum(1) == 0, 0] = 1
    p = np.clip(y * 0.3 + rng.random(y.shape) * 0.6, 0, 1)
    predict = PredictConfig()
    tasks = {m: resolve_metric(get_task("multilabel"), m) for m in ("f1_samples", "f1_micro", "f1_macro")}
    fitted = {m: fit_decisions(t, y, p, predict)["threshold"] for m, t in tasks.items()}
    for m, t in fitted.items():  # each threshold is the best of the grid for its own metric
        assert all(METRICS.get(m)(y, p, t) >= METRICS.get(m)(y, p, other) - 1e-12 for other in fitted.values())
    assert fitted["f1_samples"] == fit_decisions(get_task("multilabel"), y, p, predict)["threshold"]


def test_ordinal_cut_points_and_binary_threshold_follow_the_metric() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 400)
    p = np.exp(-((np.arange(5)[None] - (y + rng.normal(0.6, 1.0, 400))[:, None]) ** 2))
    p /= p.sum(1, keepdims=True)
    ordinal = get_task("ordinal").for_loss("ce", 5)
    qwk_cuts = fit_decisions(ordinal, y, p, PredictConfig())["cut_points"]
    mae_task = resolve_metric(ordinal, "mae")
    mae_cuts = fit_decisions(mae_task, y, p, PredictConfig())["cut_points"]
    mae = METRICS.get("mae").labels
    assert mae(y, mae_task.predict(p, {"cut_points": mae_cuts}), 5) <= mae(y, ordinal.predict(p, {"cut_points":
                                                                                                  qwk_cuts}), 5)
    yb = rng.integers(0, 2, 300)
    pb = np.clip(yb * 0.25 + rng.random(300) * 0.7, 0, 1)
    pb = np.stack([1 - pb, pb], 1)
    binary = resolve_metric(get_task("binary"), "balanced_accuracy")
    t = fit_decisions(binary, yb, pb, PredictConfig(binary_threshold="metric"))["threshold"]
    bal = METRICS.get("balanced_accuracy").labels
    assert bal(yb, binary.predict(pb, {"threshold": t}), 2) >= bal(yb, pb.argmax(1), 2)


def test_a_run_scored_by_log_loss(single_dir: Path, tiny: tuple[str, ...]) -> None:
    from podium.pipeline import train

    run = train(single_dir, merge(PodiumConfig(), [*tiny, "train.epochs=2", "cv.metric=log_loss"]))
    m = run.metrics
    assert m["metric"] == "log_loss" and m["cv_score"] == m["overall"]["log_loss"] and run.info["metric"] == "log_loss"
    for fold in m["per_fold"]:
        log = pd.read_csv(run.path / f"fold{fold['fold']}" / "log.csv")
        assert fold["best_epoch"] == int(log.loc[log["log_loss"].idxmin(), "epoch"])  # lower is better


def test_a_new_metric_fits_the_tasks_whose_target_shape_it_reads() -> None:
    from podium.tasks.base import MULTIHOT
    from podium.tasks.metrics import Metric, fitting_metrics

    METRICS.register("any_on")(Metric(lambda y, p, t=0.5: float(np.mean(p >= t)), reads=(MULTIHOT,)))
    try:
        assert "any_on" in fitting_metrics("multilabel") and "any_on" not in fitting_metrics("binary")
        assert resolve_metric(get_task("multilabel"), "any_on").primary == "any_on"
        with pytest.raises(PodiumError, match="does not fit the ordinal task; it fits multilabel"):
            resolve_metric(get_task("ordinal"), "any_on")
    finally:
        METRICS.unregister("any_on")
    assert "any_on" not in METRICS


def test_a_user_metric_that_raises_or_returns_no_number_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "odd_metrics.py").write_text(
        "def fails(y, p):\n    raise ValueError('y and p disagree\\nsecond line')\n"
        "def wordy(y, p):\n    return 'high'\n")
    y, p = np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]])
    with pytest.raises(PodiumError) as e:
        get_metric(f"{tmp_path / 'odd_metrics.py'}:fails:max")(y, p)
    assert "\n" not in str(e.value) and "the metric raised ValueError: y and p disagree on 2 rows" in str(e.value)
    with pytest.raises(PodiumError, match=r"odd_metrics.py:wordy:min: the metric returned 'high', not a number"):
        get_metric(f"{tmp_path / 'odd_metrics.py'}:wordy:min")(y, p)


def test_a_user_metric_that_raises_in_training_fails_the_run_in_one_line(single_dir: Path, tiny: tuple[str, ...],
                                                                         tmp_path: Path) -> None:
    import os
    import subprocess

    from podium.runs.run import Run

    metric = tmp_path / "failing_metric.py"
    metric.write_text("def score_rows(y, p):\n    raise ValueError('y and p disagree\\nsecond line')\n")
    spec = f"{metric}:score_rows:max"
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-m", "podium", "train", str(single_dir), *tiny, f"cv.metric={spec}",
                          "run.name=failing"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 2 and "Traceback" not in out.stdout + out.stderr, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    expected = f"error: Config key cv.metric={spec}: the metric raised ValueError: y and p disagree on "
    assert last.startswith(expected), last
    (run_dir,) = (tmp_path / "runs").glob("failing-*")
    run = Run.open(run_dir)
    assert run.status == "failed" and run.info["reason"] == last.removeprefix("error: ")
