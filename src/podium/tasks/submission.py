"""Submission files that match ``sample_submission.csv`` exactly, and a validator that proves they do.

A format is inferred from the sample's columns and the task; each format is a registered ``SubmissionKind`` that
recognises its samples, turns probabilities into the sample's value columns and validates the written columns, and
says which metric its samples imply (``implied_metric``: ``cv.metric=auto`` takes it): one probability column per
class is scored column by column (mean_auc), one binary probability column ranked (roc_auc) or, when the sample holds
fractions such as 0.5, by log loss; a label column by the task's own label metric (accuracy where the task's own
reads probabilities), space-separated labels by F1 over rows (f1_samples).
Columns of the sample that no format writes and that hold no numbers (Kaggle's ``Usage``: Public/Private) are kept
as the sample has them. Labels are spelled as the sample spells them (``2`` for a class read as ``2.0``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from podium.core.errors import PodiumError, list_some
from podium.core.io import write_csv
from podium.core.registry import Registry
from podium.tasks.base import BINARY, CLASS, MULTIHOT, Task
from podium.tasks.metrics import METRICS
from podium.tasks.thresholds import decode_multilabel


@dataclass(frozen=True)
class SubmissionFormat:
    """What the submission must look like: its id column, its columns in order, the kind of values, and the ids.

    ``values`` are the columns the format writes (empty: every column after the id), ``kept`` the other columns with
    the sample's values, written unchanged, and ``names`` the class names as the sample writes labels (empty: the
    classes themselves).
    """

    id_col: str
    columns: tuple[str, ...]
    kind: str
    ids: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    kept: tuple[tuple[str, tuple[str, ...]], ...] = ()
    names: tuple[str, ...] = ()

    @property
    def value_columns(self) -> tuple[str, ...]:
        """The columns the format writes."""
        return self.values or self.columns[1:]


# A writer maps (probabilities, classes, threshold, format) to the value columns of the submission.
Writer = Callable[[np.ndarray, list[str], float, SubmissionFormat], dict[str, list]]
# A label writer maps the task's decoded label string of each row (its fitted decisions applied: thresholds, cut
# points) and the format to the value columns; label formats have one, so the submission uses the validated rule.
LabelWriter = Callable[[list[str], SubmissionFormat, dict[str, str]], dict[str, list]]
# A validator checks one written value column (read back as strings, none empty): (values, column, classes, where).
Validator = Callable[[pd.Series, str, list[str], str], None]
# A matcher says whether a sample is in this format for the task: (sample, its value column names, task, classes,
# the sample's name) -> bool. It may raise a PodiumError when the columns are meant for it but do not fit. The value
# columns are the sample's columns but the id and the kept ones (see ``infer_format``).
Matcher = Callable[[pd.DataFrame, list[str], Task, list[str], str], bool]
# A scorer says which registered metric a sample in this format implies for the task, and why in a few words: (the
# sample's first value column, task) -> (metric, why).
Scorer = Callable[[pd.Series, Task], tuple[str, str]]


@dataclass(frozen=True)
class SubmissionKind:
    """A registered submission format: its writer, the validator of a written value column, and its rule for
    recognising a sample. ``default_column`` names its single value column when there is no sample (None: it needs
    a sample); ``labels`` says whether it writes class names (spelled as the sample spells them);
    ``write_labels`` (optional) writes the task's decoded label strings instead, when the caller has them (fitted cut
    points or thresholds). ``shapes`` are the target shapes (``podium.tasks.base``) whose predictions it can express:
    a task's formats (``Task.submissions``) are the registered ones that fit one of its shapes, in registration order,
    which is the order a sample is matched in. ``scored_by`` names the metric its samples imply (None: the task's
    own)."""

    write: Writer
    validate: Validator
    matches: Matcher
    default_column: str | None = None
    labels: bool = False
    write_labels: LabelWriter | None = None
    shapes: tuple[str, ...] = ()
    scored_by: Scorer | None = None


FORMATS: Registry[SubmissionKind] = Registry("submission format")


def formats_for(task: Task) -> tuple[str, ...]:
    """The names of the registered formats that fit one of the task's target shapes, in registration order."""
    return tuple(name for name in FORMATS if set(FORMATS.get(name).shapes) & set(task.shapes))


def _is_number(values: pd.Series) -> bool:
    return bool(pd.to_numeric(values, errors="coerce").notna().all()) and len(values) > 0


def _probabilities(values: pd.Series, col: str, classes: list[str], where: str) -> None:
    x = pd.to_numeric(values, errors="coerce")
    if x.isna().any() or (x < 0).any() or (x > 1).any():
        raise PodiumError(f"{where}: column {col!r} must hold probabilities in [0, 1].")


def _unknown(bad: list[str], col: str, where: str) -> None:
    if bad:
        raise PodiumError(f"{where}: column {col!r} holds unknown label(s) {list_some(sorted(set(bad)))}.")


def _one_label(values: pd.Series, col: str, classes: list[str], where: str) -> None:
    known = set(classes)
    _unknown([v for v in values if v not in known], col, where)


def _label_set(values: pd.Series, col: str, classes: list[str], where: str) -> None:
    known = set(classes)
    _unknown([t for v in values for t in v.split() if t not in known], col, where)


def _one_column(sample: pd.DataFrame, values: list[str], task: Task, classes: list[str], name: str) -> bool:
    return len(values) == 1


def _class_columns(sample: pd.DataFrame, values: list[str], task: Task, classes: list[str], name: str) -> bool:
    if len(values) > 1 or set(values) == set(classes):
        if set(values) != set(classes):
            raise PodiumError(
                f"{name} has value columns {list_some(values)} but the classes are {list_some(classes)}; "
                "rename the columns or set data.label_cols so that they match (other columns are kept as the sample "
                "has them only when they hold no numbers, like Usage)."
            )
        return True
    return False


def _numeric_column(sample: pd.DataFrame, values: list[str], task: Task, classes: list[str], name: str) -> bool:
    return len(values) == 1 and _is_number(sample[values[0]])


def _write_probs(p: np.ndarray, classes: list[str], threshold: float, fmt: SubmissionFormat) -> dict[str, list]:
    index = {c: i for i, c in enumerate(classes)}
    return {col: p[:, index[col]].tolist() for col in fmt.value_columns}


def _write_prob(p: np.ndarray, classes: list[str], threshold: float, fmt: SubmissionFormat) -> dict[str, list]:
    return {fmt.value_columns[0]: p[:, -1].tolist()}


def _write_label(p: np.ndarray, classes: list[str], threshold: float, fmt: SubmissionFormat) -> dict[str, list]:
    return {fmt.value_columns[0]: [classes[i] for i in p.argmax(axis=1)]}


def _label_column(labels: list[str], fmt: SubmissionFormat, spelled: dict[str, str]) -> dict[str, list]:
    return {fmt.value_columns[0]: [spelled.get(label, label) for label in labels]}


def _label_set_column(labels: list[str], fmt: SubmissionFormat, spelled: dict[str, str]) -> dict[str, list]:
    return {fmt.value_columns[0]: [" ".join(spelled.get(t, t) for t in label.split(" ")) for label in labels]}


def _write_labels(p: np.ndarray, classes: list[str], threshold: float, fmt: SubmissionFormat) -> dict[str, list]:
    rows = decode_multilabel(p, threshold)
    return {fmt.value_columns[0]: [" ".join(c for c, on in zip(classes, row) if on) for row in rows]}


def _reads_labels(task: Task) -> bool:
    """Whether the task's own metric scores decoded labels (accuracy, qwk), not probabilities (roc_auc, mean_auc)."""
    return task.primary not in METRICS or METRICS.get(task.primary).labels is not None


def _by_columns(values: pd.Series, task: Task) -> tuple[str, str]:
    if not _reads_labels(task):
        return task.primary, "probability columns"
    return "mean_auc", "one probability column per class: mean column-wise ROC AUC, as Plant Pathology 2020 scores"


def _by_probability(values: pd.Series, task: Task) -> tuple[str, str]:
    x = pd.to_numeric(values, errors="coerce").dropna()
    fractions = x[x % 1 != 0]
    if len(fractions):  # 0.5: the constant that minimises log loss, what log-loss competitions ship
        return "log_loss", (f"{values.name} holds fractions such as {fractions.iloc[0]:g}, a probability: log loss, as "
                            "Dogs vs. Cats Redux scores")
    return "roc_auc", f"{values.name} is one probability column: ROC AUC, as SIIM-ISIC scores"


def _by_label(values: pd.Series, task: Task) -> tuple[str, str]:
    if _reads_labels(task):
        return task.primary, "a label column"
    return "accuracy", f"{values.name} holds one label per row: accuracy"


def _by_label_set(values: pd.Series, task: Task) -> tuple[str, str]:
    if _reads_labels(task):
        return task.primary, "a labels column"
    return "f1_samples", (f"{values.name} holds space-separated labels: mean F1 over rows, as Plant Pathology 2021 "
                          "scores")


# one probability column per class, named like the classes, in the sample's column order
FORMATS.register("probs")(SubmissionKind(_write_probs, _probabilities, _class_columns, shapes=(CLASS, MULTIHOT),
                                         scored_by=_by_columns))
# one numeric column: the probability of the positive (last) class, as Kaggle scores binary tasks on ROC AUC
FORMATS.register("prob")(SubmissionKind(_write_prob, _probabilities, _numeric_column, shapes=(BINARY,),
                                        scored_by=_by_probability))
# one column: the task's decoded class (fitted cut points or binary threshold applied), else the most likely class
FORMATS.register("label")(SubmissionKind(_write_label, _one_label, _one_column, "label", labels=True,
                                         write_labels=_label_column, shapes=(CLASS,), scored_by=_by_label))
# one column: the space-separated classes at or above the threshold, never none
FORMATS.register("labels")(SubmissionKind(_write_labels, _label_set, _one_column, "labels", labels=True,
                                          write_labels=_label_set_column, shapes=(MULTIHOT,),
                                          scored_by=_by_label_set))

# sample columns put last, so that a one-column format takes the column before them (Kaggle ships id,label,Usage)
KEPT_NAMES = ("usage",)


def _keepable(sample: pd.DataFrame, col: str, classes: list[str]) -> bool:
    """A column that is no class and holds no numbers (Usage: Public/Private) is kept as the sample has it."""
    return col not in classes and not pd.to_numeric(sample[col], errors="coerce").notna().any()


def _spelled(sample_values: pd.Series, classes: list[str]) -> tuple[str, ...]:
    """The class names as the sample writes labels: integral numeric classes (``2.0``) written as integers when the
    sample's labels are integers, and integers (``2``) written with ``.0`` when the sample's are; else ()."""
    tokens = pd.Series([t for v in sample_values for t in str(v).split()], dtype=object)
    numbers = pd.to_numeric(pd.Series(classes, dtype=object), errors="coerce")
    if not len(tokens) or not _is_number(tokens) or numbers.isna().any() or (numbers % 1 != 0).any():
        return ()
    as_int = all("." not in t and "e" not in t.lower() for t in tokens)
    names = tuple(str(int(x)) if as_int else str(float(x)) for x in numbers)
    return names if names != tuple(classes) and len(set(names)) == len(names) else ()


def infer_format(sample: pd.DataFrame, id_col: str, task: Task, classes: list[str], name: str) -> SubmissionFormat:
    """Work out the submission format from the sample's columns and the task, or explain why it does not fit.

    The task's submission formats are asked in its order; the first one that recognises the sample is taken. The
    columns it is shown are the first non-id column and every other one that is a class or holds numbers; the rest
    (``Usage``) are kept as the sample has them.
    """
    cols = [str(c) for c in sample.columns]
    values = sorted((c for c in cols if c != id_col), key=lambda c: c.lower() in KEPT_NAMES)
    ids = tuple(sample[id_col].astype(str))
    if not values:
        raise PodiumError(f"{name} has only the id column {id_col!r}; it needs a label column too.")
    written = values[:1] + [c for c in values[1:] if not _keepable(sample, c, classes)]
    kept = tuple((c, tuple(sample[c].astype(str))) for c in cols if c != id_col and c not in written)
    for kind in task.submissions:
        variant = FORMATS.get(kind)
        if variant.matches(sample, written, task, classes, name):
            names = _spelled(sample[written[0]], classes) if variant.labels else ()
            values_kept = (tuple(written), kept) if kept else ((), ())
            return SubmissionFormat(id_col, tuple(cols), kind, ids, *values_kept, names)
    raise PodiumError(f"{name} has value columns {list_some(values)}, which fit none of the {task.name} task's "
                      f"submission formats ({', '.join(task.submissions)}); columns other than the classes are kept "
                      "as the sample has them only when they hold no numbers, like Usage.")


def implied_metric(sample: pd.DataFrame, fmt: SubmissionFormat, task: Task, name: str) -> tuple[str, str]:
    """The metric a sample in format ``fmt`` implies for ``task`` (its format's ``scored_by``), and why in words
    that start with the sample's ``name``; ('', '') where that is the task's own metric or no registered metric
    that fits the task."""
    rule = FORMATS.get(fmt.kind).scored_by
    if rule is None or not fmt.value_columns:
        return "", ""
    metric, why = rule(sample[fmt.value_columns[0]], task)
    if metric == task.primary or metric not in METRICS or not METRICS.get(metric).fits(task):
        return "", ""
    return metric, f"{name}: {why}"


def default_format(task: Task, classes: list[str], ids: list[str], id_col: str = "id") -> SubmissionFormat:
    """The format used when there is no sample: id plus the task's first format that needs no sample."""
    for kind in task.submissions:
        column = FORMATS.get(kind).default_column
        if column is not None:
            return SubmissionFormat(id_col, (id_col, column), kind, tuple(ids))
    raise PodiumError(f"The {task.name} task has no submission format that can be written without a sample.")


def make_submission(fmt: SubmissionFormat, ids: list[str], probs: np.ndarray, classes: list[str],
                    threshold: float | list[float], labels: list[str] | None = None) -> pd.DataFrame:
    """Build the submission table in the sample's id order from predictions keyed by ``ids``; a label format writes
    ``labels`` (the task's decoded label of each id, ``Task.decode``) where given."""
    pos = {i: k for k, i in enumerate(ids)}
    missing = [i for i in fmt.ids if i not in pos]
    if missing:
        raise PodiumError(f"No prediction for sample submission ids {list_some(missing)}.")
    order = np.array([pos[i] for i in fmt.ids], dtype=np.int64)
    kind = FORMATS.get(fmt.kind)
    if labels is not None and kind.write_labels is not None:
        spelled = dict(zip(classes, fmt.names)) if fmt.names else {}  # as the sample spells the classes
        values = kind.write_labels([labels[k] for k in order], fmt, spelled)
    else:
        values = kind.write(probs[order], list(fmt.names) or classes, threshold, fmt)
    df = pd.DataFrame({fmt.id_col: list(fmt.ids), **values, **{c: list(v) for c, v in fmt.kept}})
    return df[list(fmt.columns)]


def validate_submission(path: str | Path, fmt: SubmissionFormat, classes: list[str]) -> None:
    """Check a written submission against its format; raise PodiumError naming the first mismatch."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    where = f"Submission {path}"
    if tuple(df.columns) != fmt.columns:
        raise PodiumError(f"{where} has columns {list(df.columns)}, the sample has {list(fmt.columns)}.")
    if len(df) != len(fmt.ids):
        raise PodiumError(f"{where} has {len(df)} rows, the sample has {len(fmt.ids)}.")
    wrong = np.flatnonzero(df[fmt.id_col].to_numpy() != np.array(fmt.ids, dtype=object))
    if len(wrong):
        raise PodiumError(f"{where}: row {wrong[0] + 2} has id {df[fmt.id_col].iloc[wrong[0]]!r}, "
                          f"the sample has {fmt.ids[wrong[0]]!r} there.")
    for col, kept in fmt.kept:
        wrong = np.flatnonzero(df[col].to_numpy() != np.array(kept, dtype=object))
        if len(wrong):
            raise PodiumError(f"{where}: column {col!r} row {wrong[0] + 2} holds {df[col].iloc[wrong[0]]!r}, the "
                              f"sample has {kept[wrong[0]]!r}.")
    for col in fmt.value_columns:
        values = df[col]
        if (values == "").any():
            raise PodiumError(f"{where}: column {col!r} is empty in row {int(np.flatnonzero(values == '')[0]) + 2}.")
        FORMATS.get(fmt.kind).validate(values, col, list(fmt.names) or classes, where)


def write_submission(path: str | Path, fmt: SubmissionFormat, ids: list[str], probs: np.ndarray,
                     classes: list[str], threshold: float | list[float], labels: list[str] | None = None
                     ) -> pd.DataFrame:
    """Write the submission atomically and validate the file on disk (``labels``: see ``make_submission``)."""
    df = make_submission(fmt, ids, probs, classes, threshold, labels)
    write_csv(path, df)
    validate_submission(path, fmt, classes)
    return df
