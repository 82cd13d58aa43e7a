"""Metrics, each a registered ``Metric`` (``METRICS``): a function ``(targets, probs, threshold) -> float`` with its
direction, the target shapes it reads (``podium.tasks.base``: a metric fits the tasks whose targets have one of them)
and, for metrics of decoded labels, the same score of (targets, predicted targets), which is what fitted decisions
(thresholds, cut points) maximise.

Targets are class indices (N,) for single-label tasks and a 0/1 matrix (N, C) for multilabel ones; probabilities are
(N, C). ``cv.metric`` names one (or ``module:function``, a user's ``(y_true, y_prob) -> float`` with a declared
direction, see ``user_metric``): it becomes the task's primary metric (``resolve_metric``), which picks each fold's
best epoch, is what the decisions maximise (``fit_decisions``), ranks runs and weights blends (``Metric.key``), and
is the run's ``cv_score``.

A user's metric is code, so it runs only when the user named it: within ``trusted_metrics`` (every command that reads
a saved run folder, which someone may have handed over) a ``module:function`` imports only when the command line
names it again (``--metric``); any other is refused in one line. Ranking saved scores never imports it: the
direction is part of the saved name (``resolve_metric`` writes ``module:function:max``).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

from podium.config import PredictConfig
from podium.core.errors import PodiumError
from podium.core.registry import Registry
from podium.tasks.base import BINARY, CLASS, MULTIHOT
from podium.tasks.task import TASKS, Task, get_task
from podium.tasks.thresholds import Objective, decode_multilabel, global_threshold
from podium.tasks.thresholds import sample_f1 as _sample_f1

# what the metrics below decode: class indices (argmax) or a 0/1 matrix (the threshold)
DECODED = (CLASS, MULTIHOT)


@dataclass(frozen=True)
class Metric:
    """A score of predictions. ``fn(targets, probs, threshold)``; ``labels(targets, predicted, num_classes)`` when
    the metric reads decoded labels (argmax, or the multilabel ``threshold``): then fitted decisions can raise it.
    ``greater_is_better`` is its direction and ``reads`` the target shapes it reads (None: every task's, as a user's
    metric)."""

    fn: Callable[[np.ndarray, np.ndarray, Any], float]
    greater_is_better: bool = True
    reads: tuple[str, ...] | None = DECODED
    labels: Callable[[np.ndarray, np.ndarray, int], float] | None = None

    def fits(self, task: Task) -> bool:
        """Whether the metric reads one of the task's target shapes."""
        return self.reads is None or bool(set(self.reads) & set(task.shapes))

    def __call__(self, y: np.ndarray, p: np.ndarray, threshold: Any = 0.5) -> float:
        """The score of probabilities ``p`` against targets ``y`` (multilabel rows decoded at ``threshold``)."""
        return float(self.fn(y, p, threshold))

    def key(self, value: float | None) -> float:
        """A higher-is-better sort key of a value of this metric (NaN and None are the worst)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return -math.inf
        return float(value) if self.greater_is_better else -float(value)

    def objective(self, num_classes: int) -> Objective | None:
        """``(targets, predicted targets) -> key``, what decisions maximise; None when it reads no labels."""
        if self.labels is None:
            return None
        labels = self.labels
        return lambda y, pred: self.key(labels(np.asarray(y), np.asarray(pred), num_classes))


METRICS: Registry[Metric] = Registry("metric")


def _decode(y: np.ndarray, p: np.ndarray, threshold: Any) -> np.ndarray:
    """Predicted targets: the rows decoded at ``threshold`` for multilabel targets, else the most likely class."""
    p = np.asarray(p)
    return decode_multilabel(p, threshold) if np.ndim(y) == 2 else p.argmax(axis=1)


def labelled(score_labels: Callable[[np.ndarray, np.ndarray, int], float], greater_is_better: bool = True,
             reads: tuple[str, ...] = DECODED) -> Metric:
    """A metric of decoded labels ``score_labels(targets, predicted, num_classes)``."""
    def fn(y: np.ndarray, p: np.ndarray, threshold: Any = 0.5) -> float:
        return score_labels(np.asarray(y), _decode(y, p, threshold), np.asarray(p).shape[1])
    return Metric(fn, greater_is_better, reads, score_labels)


def _f1(average: str) -> Callable[[np.ndarray, np.ndarray, int], float]:
    def f1(y: np.ndarray, pred: np.ndarray, k: int) -> float:
        labels = None if np.ndim(y) == 2 else np.arange(k)
        return float(skm.f1_score(y, pred, average=average, labels=labels, zero_division=0))
    return f1


def _accuracy(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Share of rows predicted exactly (the whole label set for multilabel rows)."""
    same = pred == y
    return float((same.all(axis=1) if same.ndim == 2 else same).mean())


def _qwk(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    return float(skm.cohen_kappa_score(y, pred, weights="quadratic", labels=np.arange(k)))


def _roc_auc(y: np.ndarray, p: np.ndarray, threshold: Any = 0.5) -> float:
    """ROC AUC of the positive (second) class; NaN when a fold holds one class only."""
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(skm.roc_auc_score(y, np.asarray(p)[:, 1]))


def _mean_auc(y: np.ndarray, p: np.ndarray, threshold: Any = 0.5) -> float:
    """Mean column-wise ROC AUC over the classes that have both positives and negatives (single-label targets as
    one-hot columns: Plant Pathology 2020)."""
    p = np.asarray(p)
    y = np.asarray(y) if np.ndim(y) == 2 else np.eye(p.shape[1], dtype=np.int64)[np.asarray(y, dtype=np.int64)]
    scores = [skm.roc_auc_score(y[:, c], p[:, c]) for c in range(y.shape[1]) if 0 < y[:, c].sum() < len(y)]
    return float(np.mean(scores)) if scores else float("nan")


def _log_loss(y: np.ndarray, p: np.ndarray, threshold: Any = 0.5) -> float:
    """Cross-entropy of the predicted distribution; for multilabel rows the mean binary cross-entropy."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-15, 1 - 1e-15)
    if np.ndim(y) == 2:
        y = np.asarray(y)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return float(skm.log_loss(y, p / p.sum(axis=1, keepdims=True), labels=np.arange(p.shape[1])))


def _sample_f1_metric(y: np.ndarray, p: np.ndarray, threshold: Any = 0.5) -> float:
    """Mean over rows of the F1 of the label set decoded at ``threshold`` (Plant Pathology 2021's metric)."""
    return _sample_f1(y, p, threshold)


def _sample_f1_labels(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    return float(skm.f1_score(y, pred, average="samples", zero_division=0))


def _register(names: tuple[str, ...], metric: Metric) -> None:
    for name in names:
        METRICS.register(name)(metric)


_register(("accuracy",), labelled(_accuracy))
_register(("balanced_accuracy",), labelled(lambda y, pred, k: float(skm.balanced_accuracy_score(y, pred)),
                                           reads=(CLASS,)))
_register(("log_loss",), Metric(_log_loss, greater_is_better=False))
_register(("macro_f1", "f1_macro"), labelled(_f1("macro")))
_register(("f1_micro",), labelled(_f1("micro")))
_register(("f1_weighted",), labelled(_f1("weighted")))
_register(("sample_f1", "f1_samples"), Metric(_sample_f1_metric, True, (MULTIHOT,), _sample_f1_labels))
_register(("roc_auc",), Metric(_roc_auc, reads=(BINARY,)))
_register(("mean_auc",), Metric(_mean_auc))
_register(("qwk",), labelled(_qwk, reads=(CLASS,)))
_register(("mae",), labelled(lambda y, pred, k: float(np.mean(np.abs(np.asarray(pred) - np.asarray(y)))),
                             greater_is_better=False, reads=(CLASS,)))


# ------------------------------------------------------------------------------------------------- a user's metric


# The user metrics (``module:function``) the current command may import; None: every one its caller names (training
# from a config the user gave, a library caller). ``trusted_metrics`` narrows it for the commands that read saved runs.
_TRUSTED: ContextVar[frozenset[str] | None] = ContextVar("podium_trusted_metrics", default=None)


def split_user_metric(spec: str) -> tuple[str, str, str | None]:
    """``module:function[:max|min]`` as (module, function, direction or None); one line when it is not that."""
    parts = spec.split(":")
    direction = parts.pop() if len(parts) == 3 and parts[-1] in ("max", "min") else None
    if len(parts) != 2 or not all(parts):
        raise PodiumError(f"Config key cv.metric: {spec!r} must be a metric name or module:function[:max|min].")
    return parts[0], parts[1], direction


@contextmanager
def trusted_metrics(*specs: str) -> Iterator[None]:
    """Within: a user's metric imports only when one of ``specs`` (what the user typed, e.g. ``--metric``) names
    the same ``module:function``; a metric named by a saved config alone is refused (``refuse_untrusted``)."""
    trusted = set()
    for spec in filter(None, specs):
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not all(parts) or (len(parts) == 3 and parts[2] not in ("max", "min")):
            raise PodiumError(f"--metric {spec!r} must name a user metric, module:function (or "
                              "path/to/file.py:function).")
        trusted.add(f"{parts[0]}:{parts[1]}")
    token = _TRUSTED.set(frozenset(trusted))
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def refuse_untrusted(name: str) -> None:
    """One line, before any work, when ``name`` is a user metric the current command may not import."""
    trusted = _TRUSTED.get()
    if trusted is None or ":" not in name:
        return
    module, function, _ = split_user_metric(name)
    if f"{module}:{function}" not in trusted:
        raise PodiumError(f"cv.metric={name} is a user metric named by a saved run folder, not by you: its code "
                          f"was not run. If you trust it, name it again: --metric {module}:{function}.")


def user_metric(spec: str) -> Metric:
    """``module:function`` (or ``path/file.py:function``), optionally ``:max`` / ``:min``: a user's metric
    ``function(y_true, y_prob) -> float``, imported now (where the command may: ``refuse_untrusted``). Its direction
    is the suffix, else the function's ``greater_is_better`` attribute; one of them must say it. It fits every
    task; it reads probabilities."""
    module, name, direction = split_user_metric(spec)
    refuse_untrusted(spec)
    try:
        if module.endswith(".py"):
            path = Path(module).expanduser()
            spec_ = importlib.util.spec_from_file_location(path.stem, path)
            if spec_ is None or spec_.loader is None or not path.is_file():
                raise FileNotFoundError(f"no file {path}")
            mod = importlib.util.module_from_spec(spec_)
            spec_.loader.exec_module(mod)
        else:
            mod = importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - any failure of the user's module is one line
        raise PodiumError(f"Config key cv.metric={spec}: cannot import {module} ({type(e).__name__}: {e}); put it "
                          "on PYTHONPATH or give its file, path/to/file.py:function.") from None
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise PodiumError(f"Config key cv.metric={spec}: {module} has no function {name!r}.")
    greater = {"max": True, "min": False}.get(direction or "", getattr(fn, "greater_is_better", None))
    if not isinstance(greater, bool):
        raise PodiumError(f"Config key cv.metric={spec}: declare the metric's direction, {module}:{name}:max or "
                          f":min (or set {name}.greater_is_better = True or False).")
    return Metric(_guarded(spec, fn), greater, reads=None)


def _guarded(spec: str, fn: Callable[[np.ndarray, np.ndarray], Any]) -> Callable[..., float]:
    """``fn`` as a metric's function: whatever it raises, or a value that is not a number, becomes one line naming
    the metric and the error, so that a run stops as failed with that reason, not with a traceback of the user's
    code."""
    called = (f"it is called as {getattr(fn, '__name__', 'fn')}(y_true, y_prob) with class indices (a 0/1 matrix for "
              "multilabel) and probabilities (N, C)")

    def metric(y: np.ndarray, p: np.ndarray, threshold: Any = 0.5) -> float:
        try:
            value = fn(y, p)
        except Exception as e:  # noqa: BLE001 - any failure of the user's function is one line
            first = (str(e).strip().splitlines() or [""])[0]
            raise PodiumError(f"Config key cv.metric={spec}: the metric raised {type(e).__name__}"
                              f"{': ' + first if first else ''} on {len(y)} rows; {called}.") from None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise PodiumError(f"Config key cv.metric={spec}: the metric returned {str(value)[:60]!r}, not a number; "
                              f"{called}, and must return a number.") from None

    return metric


def get_metric(name: str) -> Metric:
    """The registered metric ``name``, or a user's ``module:function`` (``user_metric``)."""
    if ":" in name:
        return user_metric(name)
    if name not in METRICS:
        try:
            METRICS.get(name)
        except PodiumError as e:
            raise PodiumError(f"Config key cv.metric: {e}") from None
    return METRICS.get(name)


def check_metric(name: str, task: str | Task = "auto") -> None:
    """Config load: ``cv.metric`` names a metric (or imports), and fits ``task`` (a task or a task's name) when the
    task is known."""
    if name == "auto":
        return
    metric = get_metric(name)
    if task == "auto":
        return
    task = get_task(task) if isinstance(task, str) else task
    if not metric.fits(task):
        fits = [t for t in TASKS if metric.fits(get_task(t))]
        raise PodiumError(f"Config key cv.metric={name} does not fit the {task.name} task; it fits "
                          f"{', '.join(fits) or 'no registered task'}. Choose one of "
                          f"{', '.join(fitting_metrics(task))}.")


def fitting_metrics(task: str | Task) -> list[str]:
    """The registered metrics that fit ``task`` (a task or a task's name)."""
    task = get_task(task) if isinstance(task, str) else task
    return [n for n in METRICS if METRICS.get(n).fits(task)]


def resolve_metric(task: Task, name: str) -> Task:
    """The task scored by ``cv.metric=name`` (``auto``: its own primary metric); a metric that does not fit the
    task is one line naming the choices."""
    if name in ("auto", "", None) or name == task.primary:
        return task
    check_metric(name, task)
    if ":" in name and split_user_metric(name)[2] is None:  # saved with its direction: ranked without importing
        name = f"{name}:{'max' if get_metric(name).greater_is_better else 'min'}"
    return task.with_metric(name)


def metric_key(name: str, value: float | None) -> float:
    """A higher-is-better sort key of a ``name`` score, for ranking saved runs without running any code: a
    registered metric's direction, a user metric's saved suffix (``:min``), else higher-is-better."""
    if ":" in name:
        try:
            greater = split_user_metric(name)[2] != "min"
        except PodiumError:
            greater = True
    else:
        greater = METRICS.get(name).greater_is_better if name in METRICS else True
    return Metric(lambda y, p, t=0.5: 0.0, greater).key(value)


# ------------------------------------------------------------------------------------------------ scores, decisions


def fit_decisions(task: Task, y: np.ndarray, p: np.ndarray, predict: PredictConfig) -> dict[str, Any]:
    """``task.fit_decisions`` maximising the task's primary metric where it reads labels (``cv.metric=f1_micro``
    fits the multilabel threshold for micro F1, ``mae`` the ordinal cut points for MAE), else the rule's own."""
    objective = get_metric(task.primary).objective(np.asarray(p).shape[1])
    return task.fit_decisions(y, p, predict, objective)


def score(task: Task, y: np.ndarray, p: np.ndarray, threshold: float = 0.5,
          decisions: Mapping[str, Any] | None = None) -> dict[str, float]:
    """All of the task's metrics; a ``threshold`` in ``decisions`` (``Task.fit_decisions``, one number or one per
    class) overrides ``threshold``."""
    threshold = (decisions or {}).get("threshold", threshold)
    return {name: get_metric(name)(y, p, threshold) for name in task.metrics}


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
