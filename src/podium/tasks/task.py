"""The registered tasks: what the targets are, how logits become probabilities and labels, which loss and metrics
apply.

A task is chosen from the data (binary, multiclass, multilabel) or by the user (ordinal), and everything downstream
asks the task rather than branching on its name: which raw labels it accepts and how they become targets, how targets
are counted, shown and weighted, which decisions (a threshold) are fitted on out-of-fold predictions, how
probabilities are decoded into labels with them, how sure and how wrong a prediction is, and what a report draws of
them (``decision_view``). Which metrics, fold stratifier and submission formats fit it follows from its target
shapes (``podium.tasks.base``).

Single-label targets are class indices (N,); multilabel targets are a 0/1 matrix (N, C). Each task is an instance of
one of the classes below, registered in ``TASKS``; a new task is one more registered instance (or subclass).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from podium.config import PredictConfig
from podium.core.errors import PodiumError, list_some
from podium.core.registry import Registry
from podium.tasks.base import BINARY, CLASS, MULTIHOT, Task
from podium.tasks.ordinal import (
    ORDINAL_LOSSES,
    OrdinalCoding,
    cut_point_report,
    cut_point_view,
    expected_grade,
    fit_cut_points,
    grades,
    softmax,
)
from podium.tasks.suspects import LabelIssues, multilabel_issues, ordinal_issues, single_label_issues
from podium.tasks.thresholds import (
    BINARY_RULES,
    THRESHOLD_MODES,
    DecisionView,
    Objective,
    binary_report,
    binary_view,
    decode_multilabel,
    multilabel_report,
    multilabel_view,
)

DEFAULT_THRESHOLD = 0.5
__all__ = ["TASKS", "Task", "decode_multilabel", "get_task", "detect_task"]


@dataclass(frozen=True)
class SingleLabelTask(Task):
    """One class per row, softmax probabilities, argmax decisions. ``num_classes`` fixes the class count if set."""

    num_classes: int | None = None
    shapes: ClassVar[tuple[str, ...]] = (CLASS,)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Softmax over the classes."""
        return softmax(logits)

    def logits(self, probs: np.ndarray) -> np.ndarray:
        """Log-probabilities (softmax of them gives ``probs`` back)."""
        return np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0))

    def accepts(self, lists: Sequence[Sequence[str]], classes: Sequence[str]) -> bool:
        """One label per row, and the class count the task needs (if any)."""
        return all(len(labels) == 1 for labels in lists) and self.num_classes in (None, len(classes))

    def from_labels(self, lists: Sequence[Sequence[str]], classes: Sequence[str]) -> np.ndarray:
        """Class indices; stops on rows with several or no labels, a single class or the wrong class count."""
        rows = [r + 2 for r, labels in enumerate(lists) if len(labels) != 1]
        if rows:
            raise PodiumError(f"data.task={self.name} needs one label per row, but rows {list_some(rows)} "
                              "have several or none.")
        labels = [labels[0] for labels in lists]
        if len(set(labels)) < 2:
            raise PodiumError(f"The training labels hold a single class ({labels[0]!r}); at least two are needed.")
        if self.num_classes not in (None, len(classes)):
            raise PodiumError(f"data.task={self.name} but there are {len(classes)} classes: "
                              f"{list_some(list(classes))}.")
        index = {c: i for i, c in enumerate(classes)}
        return np.array([index[v] for v in labels], dtype=np.int64)

    def onehot(self, targets: np.ndarray, num_classes: int) -> np.ndarray:
        """One 1 per row, at the row's class."""
        return np.eye(num_classes, dtype=np.int64)[np.asarray(targets, dtype=np.int64)]

    def counts(self, targets: np.ndarray, num_classes: int) -> np.ndarray:
        """Images per class."""
        return np.bincount(np.asarray(targets, dtype=np.int64), minlength=num_classes)

    def label_strings(self, targets: np.ndarray, classes: Sequence[str]) -> list[str]:
        """The class name of each row."""
        return [classes[i] for i in targets]

    def balanced_weights(self, targets: np.ndarray, num_classes: int) -> np.ndarray:
        """Inverse-frequency cross-entropy weights n / (C * count)."""
        return len(targets) / (num_classes * self.counts(targets, num_classes).clip(min=1))

    def predict(self, probs: np.ndarray, decisions: Mapping[str, Any]) -> np.ndarray:
        """The most likely class of each row (no decisions are needed)."""
        return np.asarray(probs).argmax(axis=1)

    def confidence(self, probs: np.ndarray) -> np.ndarray:
        """The probability of the most likely class."""
        return np.asarray(probs).max(axis=1)

    def row_loss(self, truth: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """The cross-entropy of the true class."""
        return -np.log((np.clip(probs, 1e-7, 1 - 1e-7) * truth).sum(axis=1))

    def worst_class(self, truth: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """The predicted (most likely) class."""
        return np.asarray(probs).argmax(axis=1)

    def label_issues(self, targets: np.ndarray, probs: np.ndarray, decisions: Mapping[str, Any]) -> LabelIssues:
        """Confident learning on class indices; the suggestion is the most likely class."""
        return single_label_issues(targets, probs)


@dataclass(frozen=True)
class MultiLabelTask(Task):
    """Any set of classes per row, independent sigmoid probabilities, a fitted global threshold."""

    multilabel: ClassVar[bool] = True
    shapes: ClassVar[tuple[str, ...]] = (MULTIHOT,)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """A sigmoid per class."""
        return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))

    def logits(self, probs: np.ndarray) -> np.ndarray:
        """The inverse sigmoid of each probability."""
        p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1 - 1e-12)
        return np.log(p / (1 - p))

    def accepts(self, lists: Sequence[Sequence[str]], classes: Sequence[str]) -> bool:
        """Every shape: several, one or no labels per row."""
        return True

    def from_labels(self, lists: Sequence[Sequence[str]], classes: Sequence[str]) -> np.ndarray:
        """The 0/1 matrix (N, C) of the labels of each row."""
        index = {c: i for i, c in enumerate(classes)}
        y = np.zeros((len(lists), len(classes)), dtype=np.int64)
        for r, labels in enumerate(lists):
            y[r, [index[t] for t in labels]] = 1
        return y

    def onehot(self, targets: np.ndarray, num_classes: int) -> np.ndarray:
        """The targets themselves."""
        return np.asarray(targets, dtype=np.int64)

    def balanced_weights(self, targets: np.ndarray, num_classes: int) -> np.ndarray:
        """BCE positive weights negatives / positives per class, capped at 10."""
        pos = self.counts(targets, num_classes).clip(min=1)
        return np.minimum((len(targets) - pos) / pos, 10.0)

    def fit_decisions(self, targets: np.ndarray, probs: np.ndarray, predict: PredictConfig,
                      objective: Objective | None = None) -> dict[str, Any]:
        """``{"threshold": t}``: ``predict.threshold`` for every class, or with a negative one the threshold(s)
        fitted by ``predict.threshold_mode`` (one global float, or one per class) for ``objective``."""
        if predict.threshold >= 0:
            return {"threshold": float(predict.threshold)}
        rule = THRESHOLD_MODES.get(predict.threshold_mode)
        return {"threshold": rule(np.asarray(targets), np.asarray(probs), objective=objective)}

    def predict(self, probs: np.ndarray, decisions: Mapping[str, Any]) -> np.ndarray:
        """Every class at or above ``decisions["threshold"]`` (default 0.5; one number or one per class); the most
        likely class where none is."""
        return decode_multilabel(np.asarray(probs), decisions.get("threshold", DEFAULT_THRESHOLD))

    def confidence(self, probs: np.ndarray) -> np.ndarray:
        """How sure the least sure class is (a row is sure when every class is clearly on or off)."""
        probs = np.asarray(probs)
        return np.maximum(probs, 1 - probs).min(axis=1)

    def row_loss(self, truth: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """The mean binary cross-entropy over the classes."""
        p = np.clip(probs, 1e-7, 1 - 1e-7)
        return -(truth * np.log(p) + (1 - truth) * np.log(1 - p)).mean(axis=1)

    def worst_class(self, truth: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """The class scored furthest from its target."""
        return np.abs(np.asarray(truth) - np.asarray(probs)).argmax(axis=1)

    def label_issues(self, targets: np.ndarray, probs: np.ndarray, decisions: Mapping[str, Any]) -> LabelIssues:
        """Confident learning per class (one-vs-rest); the suggestion is every class at or above its threshold."""
        return multilabel_issues(targets, probs, decisions.get("threshold", DEFAULT_THRESHOLD))

    def decision_report(self, targets: np.ndarray, probs: np.ndarray, decisions: Mapping[str, Any]
                        ) -> dict[str, float]:
        """Sample F1 at 0.5, at the best global threshold and at the decisions' threshold(s)."""
        return multilabel_report(np.asarray(targets), np.asarray(probs), decisions.get("threshold", 0.5))

    def decision_view(self, targets: np.ndarray, probs: np.ndarray, decisions: Mapping[str, Any],
                      predict: PredictConfig, classes: Sequence[str]) -> DecisionView | None:
        """Sample F1 against the global threshold, or per class against each class's threshold."""
        if "threshold" not in decisions:
            return None
        return multilabel_view(np.asarray(targets), np.asarray(probs), decisions["threshold"],
                               predict.threshold_mode, classes)


@dataclass(frozen=True)
class BinaryTask(SingleLabelTask):
    """Two classes; label submissions may use a threshold on the positive (second) class fitted on OOF rows."""

    shapes: ClassVar[tuple[str, ...]] = (CLASS, BINARY)

    def fit_decisions(self, targets: np.ndarray, probs: np.ndarray, predict: PredictConfig,
                      objective: Objective | None = None) -> dict[str, Any]:
        """``{"threshold": t}`` fitted by ``predict.binary_threshold`` (``metric``: for ``objective``); nothing for
        ``argmax``."""
        t = BINARY_RULES.get(predict.binary_threshold)(np.asarray(targets), np.asarray(probs), objective=objective)
        return {} if t is None else {"threshold": float(t)}

    def predict(self, probs: np.ndarray, decisions: Mapping[str, Any]) -> np.ndarray:
        """The positive class where its probability reaches ``decisions["threshold"]``; argmax without one."""
        if "threshold" not in decisions:
            return super().predict(probs, decisions)
        return (np.asarray(probs)[:, 1] >= float(decisions["threshold"])).astype(np.int64)

    def decision_report(self, targets: np.ndarray, probs: np.ndarray, decisions: Mapping[str, Any]
                        ) -> dict[str, float]:
        """Accuracy and F1 at 0.5 and at the fitted threshold (when there is one)."""
        if "threshold" not in decisions:
            return {}
        return binary_report(np.asarray(targets), np.asarray(probs), float(decisions["threshold"]))

    def decision_view(self, targets: np.ndarray, probs: np.ndarray, decisions: Mapping[str, Any],
                      predict: PredictConfig, classes: Sequence[str]) -> DecisionView | None:
        """The ``predict.binary_threshold`` rule's metric against the threshold on the positive class."""
        if "threshold" not in decisions:
            return None
        return binary_view(np.asarray(targets), np.asarray(probs), float(decisions["threshold"]),
                           predict.binary_threshold, classes[1])


# The ordinal task's loss for train.loss=auto: cumulative, the APTOS recipe's "ordinal BCE". bench/ordinal.py
# (knee-oa-mini, held-out QWK with cut points cross-fitted, median of 3 seeds): cumulative 0.519, regression 0.498,
# ce 0.486, against 0.253 for ce + argmax (bench/results/ordinal.md): the fitted cut points are most of the gain.
DEFAULT_ORDINAL_LOSS = "cumulative"


@dataclass(frozen=True)
class OrdinalTask(SingleLabelTask):
    """Grades 0..K-1 in order. ``loss`` names the registered ``podium.tasks.ordinal.ORDINAL_LOSSES`` coding it trains
    with (which fixes the model's outputs and how they become probabilities); decisions are cut points on the
    continuous score (the expected grade) fitted for QWK on the OOF rows."""

    def label_issues(self, targets: np.ndarray, probs: np.ndarray, decisions: Mapping[str, Any]) -> LabelIssues:
        """Confident learning on grades, ranked by the expected grade distance: a neighbouring grade, the expected
        confusion of a graded scale, ranks below a far one."""
        return ordinal_issues(targets, probs)

    def coding(self) -> OrdinalCoding:
        """The registered coding of the task's loss."""
        return ORDINAL_LOSSES.get(self.loss)

    def for_loss(self, loss: str, num_classes: int) -> Task:
        """The task coded by ``loss`` (``auto``: the default ordinal loss) over ``num_classes`` grades."""
        name = DEFAULT_ORDINAL_LOSS if loss == "auto" else loss
        if name not in ORDINAL_LOSSES:
            raise PodiumError(f"train.loss={loss} does not fit the ordinal task; choose from "
                              f"{', '.join(ORDINAL_LOSSES)} or auto.")
        return replace(self, loss=name, num_classes=num_classes)

    def outputs(self, num_classes: int) -> int:
        """The coding's output count."""
        return self.coding().outputs(num_classes)

    def from_logits(self, logits: np.ndarray) -> np.ndarray:
        """Grade probabilities from log-probabilities (``logits``): a softmax, whatever coding the runs trained with,
        so that runs of different ordinal losses blend on one scale."""
        return softmax(np.asarray(logits, dtype=np.float64))

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Per-grade probabilities from the coding's outputs (the grade count is known to the coding)."""
        logits = np.asarray(logits)
        return self.coding().probabilities(logits, self._grades_of(logits.shape[1]))

    def _grades_of(self, outputs: int) -> int:
        """The grade count: the task's own once resolved (``for_loss``), else the only one the outputs allow."""
        if self.num_classes is not None:
            return self.num_classes
        fits = [k for k in range(2, outputs + 3) if self.coding().outputs(k) == outputs]
        if len(fits) != 1:
            raise ValueError(f"{outputs} outputs of the {self.loss} coding need the grade count (Task.for_loss)")
        return fits[0]

    def evidence(self, outputs: Any, cls: int, num_classes: int) -> Any:
        """The coding's evidence for grade ``cls`` (``OrdinalCoding.evidence``)."""
        return self.coding().evidence(outputs, cls, num_classes)

    def columns(self, probs: np.ndarray) -> dict[str, np.ndarray]:
        """``score``: the expected grade."""
        return {"score": expected_grade(probs)}

    def fit_decisions(self, targets: np.ndarray, probs: np.ndarray, predict: PredictConfig,
                      objective: Objective | None = None) -> dict[str, Any]:
        """``{"cut_points": [...]}``: the K-1 sorted thresholds on the score maximising ``objective`` (default
        QWK) on the OOF rows."""
        probs = np.asarray(probs)
        return {"cut_points": fit_cut_points(np.asarray(targets), expected_grade(probs), probs.shape[1], objective)}

    def predict(self, probs: np.ndarray, decisions: Mapping[str, Any]) -> np.ndarray:
        """Grades from the cut points on the score; argmax without them."""
        if "cut_points" not in decisions:
            return super().predict(probs, decisions)
        return grades(expected_grade(probs), decisions["cut_points"])

    def decision_report(self, targets: np.ndarray, probs: np.ndarray, decisions: Mapping[str, Any]
                        ) -> dict[str, float]:
        """QWK and accuracy of argmax, of the rounded score and of the cut points."""
        probs = np.asarray(probs)
        cuts = decisions.get("cut_points", list(np.arange(probs.shape[1] - 1) + 0.5))
        return cut_point_report(np.asarray(targets), probs, cuts)

    def decision_view(self, targets: np.ndarray, probs: np.ndarray, decisions: Mapping[str, Any],
                      predict: PredictConfig, classes: Sequence[str]) -> DecisionView | None:
        """QWK against each cut point, and the score per true grade with the cut points."""
        if "cut_points" not in decisions:
            return None
        return cut_point_view(np.asarray(targets), np.asarray(probs), decisions["cut_points"], classes)


TASKS: Registry[Task] = Registry("task")


def _add(task: Task) -> None:
    TASKS.register(task.name)(task)


_add(BinaryTask("binary", "ce", ("roc_auc", "accuracy", "log_loss"), "roc_auc", num_classes=2))
_add(SingleLabelTask("multiclass", "ce", ("accuracy", "log_loss", "macro_f1"), "accuracy"))
_add(OrdinalTask("ordinal", DEFAULT_ORDINAL_LOSS, ("qwk", "accuracy", "log_loss"), "qwk", auto=False, ordered=True))
_add(MultiLabelTask("multilabel", "bce", ("mean_auc", "sample_f1"), "mean_auc"))

def get_task(name: str) -> Task:
    """The registered task called ``name``."""
    return TASKS.get(name)


def detect_task(lists: Sequence[Sequence[str]], classes: Sequence[str], grades: bool = False) -> Task:
    """``data.task=auto``: the first registered task open to auto-detection that accepts labels of this shape. With
    ``grades`` (the labels are integer grades 0..K-1 of a column named like a grade: ``ColumnRoles.grades``) a task
    that ranks its classes (``ordered``: ordinal) comes first, auto-detected or not."""
    names = sorted(TASKS, key=lambda n: not (grades and TASKS.get(n).ordered))
    for name in names:
        task = TASKS.get(name)
        if (task.auto or grades and task.ordered) and task.accepts(lists, classes):
            return task
    raise PodiumError(f"No task fits these labels; set data.task to one of {', '.join(TASKS)}.")
