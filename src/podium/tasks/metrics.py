"""Metrics, each a registered function ``(targets, probs, threshold) -> float``, plus per-class reports.

Targets are class indices (N,) for single-label tasks and a 0/1 matrix (N, C) for multilabel ones; probabilities are
(N, C). Every metric is higher-is-better except log_loss, which the task never uses as its primary metric.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn import metrics as skm

from podium.core.registry import Registry
from podium.tasks.task import Task
from podium.tasks.thresholds import global_threshold
from podium.tasks.thresholds import sample_f1 as _sample_f1

Metric = Callable[[np.ndarray, np.ndarray, float], float]
METRICS: Registry[Metric] = Registry("metric")


@METRICS.register("accuracy")
def accuracy(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float:
    """Share of rows whose most likely class is the true one."""
    return float((p.argmax(axis=1) == y).mean())


@METRICS.register("log_loss")
def log_loss(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float:
    """Cross-entropy of the predicted distribution (lower is better)."""
    return float(skm.log_loss(y, np.clip(p, 1e-15, 1), labels=np.arange(p.shape[1])))


@METRICS.register("macro_f1")
def macro_f1(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float:
    """Unweighted mean of the per-class F1 scores of the argmax predictions."""
    return float(skm.f1_score(y, p.argmax(axis=1), average="macro", labels=np.arange(p.shape[1]), zero_division=0))


@METRICS.register("roc_auc")
def roc_auc(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float:
    """ROC AUC of the positive (second) class; NaN when a fold holds one class only."""
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(skm.roc_auc_score(y, p[:, 1]))


@METRICS.register("qwk")
def qwk(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float:
    """Quadratic weighted kappa of the argmax grades."""
    return float(skm.cohen_kappa_score(y, p.argmax(axis=1), weights="quadratic", labels=np.arange(p.shape[1])))


@METRICS.register("mean_auc")
def mean_auc(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float:
    """Mean column-wise ROC AUC over the classes that have both positives and negatives."""
    scores = [skm.roc_auc_score(y[:, c], p[:, c]) for c in range(y.shape[1]) if 0 < y[:, c].sum() < len(y)]
    return float(np.mean(scores)) if scores else float("nan")


@METRICS.register("sample_f1")
def sample_f1(y: np.ndarray, p: np.ndarray, threshold: float | list[float] = 0.5) -> float:
    """Mean over rows of the F1 of the label set decoded at ``threshold`` (one, or one per class; Plant Pathology
    2021's metric)."""
    return _sample_f1(y, p, threshold)


def score(task: Task, y: np.ndarray, p: np.ndarray, threshold: float = 0.5,
          decisions: Mapping[str, Any] | None = None) -> dict[str, float]:
    """All of the task's metrics; a ``threshold`` in ``decisions`` (``Task.fit_decisions``, one number or one per
    class) overrides ``threshold``."""
    threshold = (decisions or {}).get("threshold", threshold)
    return {name: METRICS.get(name)(y, p, threshold) for name in task.metrics}


def per_class(task: Task, y: np.ndarray, p: np.ndarray, classes: list[str], threshold: float = 0.5,
              decisions: Mapping[str, Any] | None = None) -> dict:
    """One-vs-rest ROC AUC, precision, recall, F1 and support for each class, of the task's decoded predictions.

    The predictions are decoded with ``decisions`` (``Task.fit_decisions``), or else at ``threshold``.
    """
    decisions = {"threshold": threshold, **(decisions or {})}
    truth = task.onehot(y, len(classes))
    pred = task.onehot(task.predict(p, decisions), len(classes))
    out = {}
    for c, name in enumerate(classes):
        t = truth[:, c]
        auc = float(skm.roc_auc_score(t, p[:, c])) if 0 < t.sum() < len(t) else float("nan")
        out[name] = {
            "roc_auc": auc,
            "precision": float(skm.precision_score(t, pred[:, c], zero_division=0)),
            "recall": float(skm.recall_score(t, pred[:, c], zero_division=0)),
            "f1": float(skm.f1_score(t, pred[:, c], zero_division=0)),
            "support": int(t.sum()),
        }
    return out


def fit_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The global multilabel threshold that maximises sample F1 on these (out-of-fold) predictions."""
    return global_threshold(y, p)
