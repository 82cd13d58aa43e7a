"""The ``Task`` base: what every task answers, and the target shapes through which variants declare what they fit.

A task's targets have one or more *shapes* (``Task.shapes``); metrics (``Metric.reads``), submission formats
(``SubmissionKind.shapes``) and fold stratifiers (``Stratifier.shapes``) declare the shapes they handle, so a task
finds the formats and the stratifier that fit it in their registries, and whether a metric fits it is computed: a new
metric, format, stratifier or task is one registered object in one module. The registered tasks are in
``podium.tasks.task``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from podium.config import PredictConfig
from podium.core.errors import PodiumError
from podium.tasks.ordinal import ORDINAL_LOSSES
from podium.tasks.suspects import LabelIssues
from podium.tasks.thresholds import DecisionView, Objective

# Target shapes. CLASS: one class index per row (N,). BINARY: class indices over two classes whose second is the
# positive one, so the probability of it is a score (ROC AUC, one-column submissions). MULTIHOT: a 0/1 matrix (N, C),
# any number of classes per row.
CLASS, BINARY, MULTIHOT = "class", "binary", "multihot"


class FoundIn:
    """A ``Task`` field that, unless a task is given one, is found in a registry: ``find(task)`` asks the registered
    variants which fit the task's target shapes, in registration order. Set (``Task(..., submissions=...)`` or
    ``dataclasses.replace``) it is that value; a copy made by ``dataclasses.replace`` keeps what its original had."""

    def __init__(self, find: Callable[[Task], Any]) -> None:
        self.find = find

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, task: Task | None, owner: type | None = None) -> Any:
        if task is None:
            return None  # the dataclass field's default: found when asked
        chosen = task.__dict__.get(self.slot)
        return self.find(task) if chosen is None else chosen

    def __set__(self, task: Task, value: Any) -> None:
        task.__dict__[self.slot] = value


def _stratifier(task: Task) -> str:
    # imported when asked: the registries' modules import this one (their variants read a task's shapes)
    from podium.tasks.stratifiers import stratifier_for

    return stratifier_for(task)


def _formats(task: Task) -> tuple[str, ...]:
    from podium.tasks.submission import formats_for  # imported when asked, as in _stratifier

    return formats_for(task)


@dataclass(frozen=True)
class Task:
    """How one kind of target is trained, scored and decoded.

    ``loss`` names a registered loss, ``metrics`` registered metrics (``primary`` first in importance). ``stratify``
    names the registered fold stratifier (``podium.tasks.stratifiers.STRATIFIERS``) and ``submissions`` the registered
    submission formats that can express the task's predictions, in the order a sample is matched against them (the
    first one with a default column is used without a sample); unless given, both are the registered ones that
    declare one of the task's target ``shapes``. ``auto`` says whether ``data.task=auto`` may pick the task;
    ``ordered`` whether the classes are ranked (numeric labels, or ``data.class_order``).
    """

    name: str
    loss: str
    metrics: tuple[str, ...]
    primary: str
    stratify: str = FoundIn(_stratifier)  # type: ignore[assignment]
    submissions: tuple[str, ...] = FoundIn(_formats)  # type: ignore[assignment]
    auto: bool = True
    ordered: bool = False
    multilabel: ClassVar[bool] = False
    shapes: ClassVar[tuple[str, ...]] = ()

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Per-class probabilities (N, C) from logits."""
        raise NotImplementedError

    def logits(self, probs: np.ndarray) -> np.ndarray:
        """Logits of class probabilities, the scale blends average runs on (``from_logits`` maps them back)."""
        raise NotImplementedError

    def from_logits(self, logits: np.ndarray) -> np.ndarray:
        """Class probabilities from ``logits`` (the inverse of ``logits``; for most tasks ``probabilities``)."""
        return self.probabilities(logits)

    def for_loss(self, loss: str, num_classes: int) -> Task:
        """The task as trained with ``train.loss`` (``auto``: the task's own) on ``num_classes`` classes: what the
        model's outputs mean depends on both. Losses that code ordered grades
        (``podium.tasks.ordinal.ORDINAL_LOSSES`` with ``needs_order``) need ``data.task=ordinal``."""
        coding = ORDINAL_LOSSES.get(loss) if loss in ORDINAL_LOSSES else None
        if coding is not None and coding.needs_order:
            raise PodiumError(f"train.loss={loss} codes ordered grades; it needs data.task=ordinal (this is a "
                              f"{self.name} task); use train.loss=auto.")
        return self

    def outputs(self, num_classes: int) -> int:
        """Model outputs for ``num_classes`` classes (one logit per class unless the loss codes them otherwise)."""
        return num_classes

    def columns(self, probs: np.ndarray) -> dict[str, np.ndarray]:
        """Extra per-row columns of prediction files besides the class probabilities (an ordinal score)."""
        return {}

    def evidence(self, outputs: Any, cls: int, num_classes: int) -> Any:
        """What Grad-CAM explains for class ``cls``: a differentiable scalar of one image's model outputs (a 1-D
        tensor); the class's own logit unless the outputs code the classes otherwise."""
        return outputs[cls]

    def decision_report(self, targets: np.ndarray, probs: np.ndarray, decisions: Mapping[str, Any]
                        ) -> dict[str, float]:
        """Scores of the plain decoding next to the fitted decisions' on the same rows (for metrics.json)."""
        return {}

    def decision_view(self, targets: np.ndarray, probs: np.ndarray, decisions: Mapping[str, Any],
                      predict: PredictConfig, classes: Sequence[str]) -> DecisionView | None:
        """What a report draws of the fitted ``decisions`` (the ``predict`` settings say which rule fitted them):
        the rule's metric as each decision moves, on these rows; None where no decision is fitted."""
        return None

    def accepts(self, lists: Sequence[Sequence[str]], classes: Sequence[str]) -> bool:
        """Whether labels of this shape (label strings per row, over ``classes``) suit the task (auto-detection)."""
        raise NotImplementedError

    def from_labels(self, lists: Sequence[Sequence[str]], classes: Sequence[str]) -> np.ndarray:
        """Targets from label strings per row over ``classes``, or a PodiumError saying why they do not fit the task."""
        raise NotImplementedError

    def onehot(self, targets: np.ndarray, num_classes: int) -> np.ndarray:
        """The targets as a 0/1 matrix (N, C)."""
        raise NotImplementedError

    def counts(self, targets: np.ndarray, num_classes: int) -> np.ndarray:
        """Rows carrying each class (C,)."""
        return self.onehot(targets, num_classes).sum(axis=0)

    def label_strings(self, targets: np.ndarray, classes: Sequence[str]) -> list[str]:
        """Human-readable label of each row of ``targets`` (space-joined class names where a row holds several)."""
        return [" ".join(c for c, on in zip(classes, row) if on) for row in self.onehot(targets, len(classes))]

    def balanced_weights(self, targets: np.ndarray, num_classes: int) -> np.ndarray:
        """Class weights for ``train.class_weights=balanced``, in the form the task's loss takes."""
        raise NotImplementedError

    def with_metric(self, metric: str) -> Task:
        """The task scored by ``metric`` (``cv.metric``): its primary metric, first of the metrics it reports
        (whether the metric fits the task is ``podium.tasks.metrics.resolve_metric``'s question)."""
        return replace(self, primary=metric, metrics=(metric, *[m for m in self.metrics if m != metric]))

    def fit_decisions(self, targets: np.ndarray, probs: np.ndarray, predict: PredictConfig,
                      objective: Objective | None = None) -> dict[str, Any]:
        """The decision rule fitted on (out-of-fold) predictions, as the ``predict`` settings ask, maximising
        ``objective(targets, predicted targets)`` (higher is better; None: the rule's own metric)."""
        return {}

    def predict(self, probs: np.ndarray, decisions: Mapping[str, Any]) -> np.ndarray:
        """Predicted targets, in the same form as the training targets, from probabilities and decisions."""
        raise NotImplementedError

    def decode(self, probs: np.ndarray, decisions: Mapping[str, Any], classes: Sequence[str]) -> list[str]:
        """The predicted label string of each row (see ``label_strings``)."""
        return self.label_strings(self.predict(probs, decisions), classes)

    def confidence(self, probs: np.ndarray) -> np.ndarray:
        """How sure the prediction of each row is (N,), in [0, 1] (pseudo-labels keep the sure rows)."""
        raise NotImplementedError

    def row_loss(self, truth: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Each row's loss (N,) of probabilities against its targets as a 0/1 matrix ``truth`` (N, C)."""
        raise NotImplementedError

    def worst_class(self, truth: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """The class that shows why each row is wrong (N,) (a report's caption and its Grad-CAM), from the targets
        as a 0/1 matrix ``truth`` (N, C) and the probabilities."""
        raise NotImplementedError

    def label_issues(self, targets: np.ndarray, probs: np.ndarray, decisions: Mapping[str, Any]) -> LabelIssues:
        """Which given labels the out-of-fold probabilities contradict (``podium.tasks.suspects``): a suspect flag,
        a quality score in [0, 1] and the suggested targets of each row."""
        raise NotImplementedError
