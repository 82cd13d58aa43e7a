import numpy as np
import pytest

from podium.config import PredictConfig
from podium.tasks.metrics import METRICS, fit_threshold, per_class, score
from podium.tasks.task import decode_multilabel, get_task


def test_single_label_metrics() -> None:
    y = np.array([0, 1, 2, 2])
    p = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.2, 0.2]])
    s = score(get_task("multiclass"), y, p)
    assert s["accuracy"] == pytest.approx(0.75)
    assert s["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.7, 0.7, 0.2])))
    assert 0 < s["macro_f1"] < 1


def test_binary_auc_and_qwk() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.35, 0.65], [0.2, 0.8]])
    assert METRICS.get("roc_auc")(y, p, 0.5) == 1.0
    assert np.isnan(METRICS.get("roc_auc")(np.zeros(4, int), p, 0.5))
    grades = np.array([0, 1, 2, 3])
    perfect = np.eye(4)[grades]
    assert METRICS.get("qwk")(grades, perfect, 0.5) == pytest.approx(1.0)
    assert METRICS.get("qwk")(grades, np.eye(4)[[3, 2, 1, 0]], 0.5) < 0


def test_multilabel_metrics_and_threshold() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((200, 4)) < 0.3).astype(int)
    y[y.sum(1) == 0, 0] = 1
    p = np.clip(y * 0.35 + rng.random((200, 4)) * 0.5, 0, 1)
    s = score(get_task("multilabel"), y, p, 0.5)
    assert 0.5 < s["mean_auc"] <= 1 and 0 < s["sample_f1"] <= 1
    t = fit_threshold(y, p)
    assert METRICS.get("sample_f1")(y, p, t) >= METRICS.get("sample_f1")(y, p, 0.5)


def test_decode_multilabel_never_leaves_a_row_empty() -> None:
    p = np.array([[0.1, 0.2, 0.05], [0.9, 0.6, 0.1]])
    out = decode_multilabel(p, 0.5)
    assert out.tolist() == [[0, 1, 0], [1, 1, 0]]


def test_per_class_report() -> None:
    y = np.array([0, 1, 1, 2])
    p = np.eye(3)[[0, 1, 2, 2]] * 0.9 + 0.05
    rep = per_class(get_task("multiclass"), y, p, ["a", "b", "c"])
    assert rep["a"]["recall"] == 1.0 and rep["b"]["recall"] == 0.5 and rep["b"]["support"] == 2


def test_metrics_read_the_tasks_decisions() -> None:
    task = get_task("multilabel")
    y = np.array([[1, 0], [0, 1], [1, 1]])
    p = np.array([[0.6, 0.2], [0.3, 0.4], [0.7, 0.45]])
    low = score(task, y, p, 0.5, decisions={"threshold": 0.35})["sample_f1"]
    assert low == score(task, y, p, 0.35)["sample_f1"] and low > score(task, y, p, 0.5)["sample_f1"]
    rep = per_class(task, y, p, ["a", "b"], decisions=task.fit_decisions(y, p, PredictConfig(threshold=0.35)))
    assert rep["b"]["recall"] == 1.0 and per_class(task, y, p, ["a", "b"], 0.5)["b"]["recall"] == 0.5
    single = get_task("ordinal")
    assert per_class(single, np.array([0, 1]), np.eye(2), ["0", "1"], decisions={})["1"]["f1"] == 1.0
