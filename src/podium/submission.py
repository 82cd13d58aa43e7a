"""Submission files that match ``sample_submission.csv`` exactly, and a validator that proves they do.

A format is inferred from the sample's columns and the task; each format is a registered writer that turns
probabilities into the sample's value columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from podium.errors import PodiumError, list_some
from podium.io import write_csv
from podium.registry import Registry
from podium.tasks import Task, decode_multilabel


@dataclass(frozen=True)
class SubmissionFormat:
    """What the submission must look like: its id column, its columns in order, the kind of values, and the ids."""

    id_col: str
    columns: tuple[str, ...]
    kind: str
    ids: tuple[str, ...] = ()


# A writer maps (probabilities, classes, threshold, format) to the value columns of the submission.
Writer = Callable[[np.ndarray, list[str], float, SubmissionFormat], dict[str, list]]
WRITERS: Registry[Writer] = Registry("submission format")


@WRITERS.register("label")
def _label(p: np.ndarray, classes: list[str], threshold: float, fmt: SubmissionFormat) -> dict[str, list]:
    return {fmt.columns[1]: [classes[i] for i in p.argmax(axis=1)]}


@WRITERS.register("labels")
def _labels(p: np.ndarray, classes: list[str], threshold: float, fmt: SubmissionFormat) -> dict[str, list]:
    rows = decode_multilabel(p, threshold)
    return {fmt.columns[1]: [" ".join(c for c, on in zip(classes, row) if on) for row in rows]}


@WRITERS.register("prob")
def _prob(p: np.ndarray, classes: list[str], threshold: float, fmt: SubmissionFormat) -> dict[str, list]:
    return {fmt.columns[1]: p[:, -1].tolist()}


@WRITERS.register("probs")
def _probs(p: np.ndarray, classes: list[str], threshold: float, fmt: SubmissionFormat) -> dict[str, list]:
    index = {c: i for i, c in enumerate(classes)}
    return {col: p[:, index[col]].tolist() for col in fmt.columns[1:]}


def _is_number(values: pd.Series) -> bool:
    return bool(pd.to_numeric(values, errors="coerce").notna().all()) and len(values) > 0


def infer_format(sample: pd.DataFrame, id_col: str, task: Task, classes: list[str], name: str) -> SubmissionFormat:
    """Work out the submission format from the sample's columns and the task, or explain why it does not fit."""
    cols = [str(c) for c in sample.columns]
    values = [c for c in cols if c != id_col]
    ids = tuple(sample[id_col].astype(str))
    if len(values) > 1 or set(values) == set(classes):
        if set(values) != set(classes):
            raise PodiumError(
                f"{name} has value columns {list_some(values)} but the classes are {list_some(classes)}; "
                "rename the columns or set data.label_cols so that they match."
            )
        return SubmissionFormat(id_col, tuple(cols), "probs", ids)
    if not values:
        raise PodiumError(f"{name} has only the id column {id_col!r}; it needs a label column too.")
    if task.multilabel:
        kind = "labels"
    elif task.name == "binary" and _is_number(sample[values[0]]):
        kind = "prob"  # a numeric binary target is scored on probabilities (ROC AUC, log loss) on Kaggle
    else:
        kind = "label"
    return SubmissionFormat(id_col, tuple(cols), kind, ids)


def default_format(task: Task, classes: list[str], ids: list[str], id_col: str = "id") -> SubmissionFormat:
    """The format used when there is no sample: id plus label(s), then one probability column per class."""
    kind = "labels" if task.multilabel else "label"
    return SubmissionFormat(id_col, (id_col, kind), kind, tuple(ids))


def make_submission(fmt: SubmissionFormat, ids: list[str], probs: np.ndarray, classes: list[str],
                    threshold: float) -> pd.DataFrame:
    """Build the submission table in the sample's id order from predictions keyed by ``ids``."""
    pos = {i: k for k, i in enumerate(ids)}
    missing = [i for i in fmt.ids if i not in pos]
    if missing:
        raise PodiumError(f"No prediction for sample submission ids {list_some(missing)}.")
    order = np.array([pos[i] for i in fmt.ids], dtype=np.int64)
    values = WRITERS.get(fmt.kind)(probs[order], classes, threshold, fmt)
    df = pd.DataFrame({fmt.id_col: list(fmt.ids), **values})
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
    known = set(classes)
    for col in fmt.columns[1:]:
        values = df[col]
        if (values == "").any():
            raise PodiumError(f"{where}: column {col!r} is empty in row {int(np.flatnonzero(values == '')[0]) + 2}.")
        if fmt.kind in ("prob", "probs"):
            x = pd.to_numeric(values, errors="coerce")
            if x.isna().any() or (x < 0).any() or (x > 1).any():
                raise PodiumError(f"{where}: column {col!r} must hold probabilities in [0, 1].")
        elif fmt.kind in ("label", "labels"):
            tokens = values.str.split() if fmt.kind == "labels" else values.map(lambda v: [v])
            bad = [t for row in tokens for t in row if t not in known]
            if bad:
                raise PodiumError(f"{where}: column {col!r} holds unknown label(s) {list_some(sorted(set(bad)))}.")


def write_submission(path: str | Path, fmt: SubmissionFormat, ids: list[str], probs: np.ndarray,
                     classes: list[str], threshold: float) -> pd.DataFrame:
    """Write the submission atomically and validate the file on disk."""
    df = make_submission(fmt, ids, probs, classes, threshold)
    write_csv(path, df)
    validate_submission(path, fmt, classes)
    return df
