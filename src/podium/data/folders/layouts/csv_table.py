"""The ``csv`` layout: train.csv (``data.train_csv``) with an id column and one label column (several labels in a
cell split by ``data.label_sep``) or one 0/1 column per class; which column is what comes from
podium.data.folders.columns. The images are found by id afterwards, by the shared ingest.

Without train.csv (and with ``data.train_csv`` left at it), the labels CSV is the top-level CSV whose ids name the
training images, whatever its name (APTOS 2015's ``trainLabels.csv``, ``train_labels.csv``): ids match image names
with or without the extension. A CSV named like a sample, a submission or a test listing, or whose ids are the
sample submission's, is never taken. When several fit, the choice is a note naming ``data.train_csv``."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from podium.config import DataConfig
from podium.core.errors import PodiumError, list_some
from podium.data.folders.columns import ZERO_ONE, check_ids, column_roles, guess_id_col, zero_one
from podium.data.folders.files import TRAIN_DIRS, nested_dirs
from podium.data.folders.layouts.layout import Layout, RawLabels
from podium.data.folders.tables import read_csv
from podium.data.pixels.images import is_image

DEFAULT_CSV = DataConfig().train_csv
NOT_LABELS = re.compile(r"sample|submission|test", re.IGNORECASE)  # names of CSVs that list test ids
PROBE_ROWS = 500  # ids of a candidate CSV compared with the image names
MIN_MATCH = 0.9  # share of a candidate's ids that must name a training image


def _id_key(id_: str) -> str:
    return id_.strip().replace("\\", "/").rsplit("/", 1)[-1].lower()


def _train_image_names(root: Path) -> set[str]:
    """Lower-cased names and stems of the images in the folders where training images are looked for."""
    names: set[str] = set()
    for rel in (*TRAIN_DIRS, *nested_dirs(root, "train")):
        folder = root / rel
        if folder.is_dir():
            with os.scandir(folder) as it:
                for e in it:
                    if is_image(e.name):
                        names.update((e.name.lower(), os.path.splitext(e.name)[0].lower()))
    return names


def _ids(path: Path, cfg: DataConfig) -> list[str]:
    """The first ids of a CSV (its ``data.id_col``, else the guessed id column), none for a CSV without labels."""
    try:
        df = read_csv(path, cfg)
    except PodiumError:  # a CSV podium cannot read is not the labels CSV; the one it picks is read with its errors
        return []
    if df.shape[1] < 2:
        return []
    id_col = guess_id_col(df, cfg.id_col if cfg.id_col in df.columns else "", path.name)
    return [_id_key(i) for i in df[id_col].head(PROBE_ROWS)]


def _share(ids: list[str], names: set[str]) -> float:
    return sum(i in names for i in ids) / len(ids) if ids else 0.0


def _shares(root: Path, csvs: list[Path], cfg: DataConfig) -> dict[str, float]:
    """Each CSV's share of ids that name a training image; those whose ids are mostly the sample's (test ids) left
    out."""
    sample = root / cfg.sample_submission
    test_ids = set(_ids(sample, cfg)) if sample.is_file() else set()
    names = _train_image_names(root)
    shares = {}
    for path in csvs:
        ids = _ids(path, cfg)
        if _share(ids, test_ids) <= 0.5:
            shares[path.name] = _share(ids, names)
    return shares


def labels_csv(root: Path, cfg: DataConfig) -> tuple[str | None, tuple[str, ...]]:
    """The labels CSV of ``root`` (``data.train_csv`` when it is set or present, else the CSV whose ids name the
    training images) and the note that names a choice podium made, or (None, ()) without one."""
    if cfg.train_csv != DEFAULT_CSV or (root / cfg.train_csv).is_file():
        return (cfg.train_csv if (root / cfg.train_csv).is_file() else None), ()
    listed = {cfg.sample_submission.lower(), cfg.test_csv.lower()}
    csvs = sorted(p for p in root.glob("*.csv") if p.is_file() and p.name.lower() not in listed
                  and not NOT_LABELS.search(p.name))
    if not csvs:
        return None, ()
    shares = _shares(root, csvs, cfg)
    fits = sorted((n for n, s in shares.items() if s >= MIN_MATCH),
                  key=lambda n: (-shares[n], "label" not in n.lower(), n))
    if not fits:
        return None, ()
    others = f"; {', '.join(fits[1:])} also fit" if len(fits) > 1 else ""
    return fits[0], (f"labels CSV {fits[0]}: its ids name the training images (no train.csv){others}; "
                     "data.train_csv=NAME picks another.",)


def _csv_detect(root: Path, cfg: DataConfig) -> bool:
    return labels_csv(root, cfg)[0] is not None


def _csv_read(root: Path, cfg: DataConfig) -> tuple[pd.DataFrame, RawLabels]:
    name, notes = labels_csv(root, cfg)
    name = name or cfg.train_csv  # data.layout=csv without the file: read it for its one-line error
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
        return frame, RawLabels(lists=_label_lists(df, label_cols[0], cfg.label_sep, name), roles=roles,
                                source=name, notes=notes)
    return frame, RawLabels(onehot=_onehot(df, label_cols, id_col, name), columns=tuple(label_cols), roles=roles,
                            source=name, notes=notes)


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
