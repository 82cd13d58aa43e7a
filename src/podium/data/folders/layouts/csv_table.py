"""The ``csv`` layout: train.csv (``data.train_csv``) with an id column and one label column (several labels in a
cell split by ``data.label_sep``) or one 0/1 column per class; which column is what comes from
podium.data.folders.columns. The images are found by id afterwards, by the shared ingest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from podium.config import DataConfig
from podium.core.errors import PodiumError, list_some
from podium.data.folders.columns import ZERO_ONE, check_ids, column_roles, guess_id_col, zero_one
from podium.data.folders.layouts.layout import Layout, RawLabels
from podium.data.folders.tables import read_csv


def _csv_detect(root: Path, cfg: DataConfig) -> bool:
    return (root / cfg.train_csv).is_file()


def _csv_read(root: Path, cfg: DataConfig) -> tuple[pd.DataFrame, RawLabels]:
    name = cfg.train_csv
    df = read_csv(root / name, cfg)
    id_col = guess_id_col(df, cfg.id_col, name)
    _check_columns(df, id_col, cfg, name)
    roles = column_roles(df, id_col, cfg, _sample_columns(root, cfg), name)
    label_cols = list(roles.labels)
    if not label_cols:
        raise PodiumError(f"{name} has only the id column {id_col!r}; add a label column.")
    ids = df[id_col].str.strip().tolist()
    check_ids(ids, name)
    frame = pd.DataFrame({"id": ids})
    if roles.group:
        frame["group"] = df[roles.group].str.strip().to_numpy()
    if len(label_cols) == 1:
        return frame, RawLabels(lists=_label_lists(df, label_cols[0], cfg.label_sep, name), roles=roles)
    return frame, RawLabels(onehot=_onehot(df, label_cols, id_col, name), columns=tuple(label_cols), roles=roles)


def _check_columns(df: pd.DataFrame, id_col: str, cfg: DataConfig, name: str) -> None:
    """The columns the config names exist, and the group column is neither the id nor a label."""
    group_cols = (cfg.group_col,) if cfg.group_col else ()
    for col in (*cfg.label_cols, *cfg.ignore_cols, *group_cols):
        if col not in df.columns:
            raise PodiumError(f"{name} has no column {col!r} (data.label_cols/ignore_cols/group_col); "
                              f"its columns: {list(df.columns)}.")
    if cfg.group_col in cfg.label_cols or cfg.group_col == id_col:
        raise PodiumError(f"data.group_col={cfg.group_col!r} is also the id or a label column; pick another column.")


def _label_lists(df: pd.DataFrame, label_col: str, sep: str, name: str) -> list[list[str]]:
    """Each row's labels from one label column, split by ``sep`` (any whitespace when ``sep`` is blank)."""
    col = df[label_col].str.strip()
    empty = col.index[col == ""].tolist()
    if empty:
        raise PodiumError(f"{name} has empty labels in column {label_col!r}, rows "
                          f"{list_some([i + 2 for i in empty])}; fill them or remove those rows.")
    lists = [v.split(sep) if sep.strip() else v.split() for v in col]
    return [[t.strip() for t in labels if t.strip()] for labels in lists]


def _onehot(df: pd.DataFrame, label_cols: list[str], id_col: str, name: str) -> np.ndarray:
    """The 0/1 matrix of one column per class, or a one-line error naming the columns that hold other values."""
    bad = [c for c in label_cols if not zero_one(df[c])]
    if bad:
        example = df[bad[0]][~df[bad[0]].str.strip().isin(ZERO_ONE)]
        raise PodiumError(
            f"{name} has columns {list_some(label_cols)} besides the id {id_col!r}. podium reads one label column or "
            f"one 0/1 column per class, but {list_some(bad)} hold other values (row {example.index[0] + 2}: "
            f"{example.iloc[0]!r}). Set data.label_cols=... and data.ignore_cols=... to say which columns are labels."
        )
    return np.stack([df[c].str.strip().astype(float).to_numpy() for c in label_cols], axis=1).astype(np.int64)


def _sample_columns(root: Path, cfg: DataConfig) -> list[str] | None:
    """The sample submission's columns besides its id (the first column, or ``data.id_col``), or None without one."""
    path = root / cfg.sample_submission
    if not path.is_file():
        return None
    sample = read_csv(path, cfg)
    id_col = cfg.id_col if cfg.id_col in sample.columns else sample.columns[0]
    return [c for c in sample.columns if c != id_col]


LAYOUT = Layout(_csv_detect, _csv_read)
