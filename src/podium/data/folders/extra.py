"""External data (``data.extra``): other labelled folders added to the training rows, train-only.

Each extra folder is read like a competition folder (any layout podium detects), its labels are matched to the
competition's classes by name (``data.extra_label_map`` renames them first), and its rows are appended with a
``source`` column (``train`` for the competition's own rows, ``extra:<folder name>`` for the others, so no folder
name can pass for the competition's own rows, not even one called ``train``) and ids prefixed with that tag. The
integrity checks then run on everything together; an extra image that duplicates (exactly or nearly)
a competition training or test image is dropped and reported, so nothing an extra row teaches can leak into a
validation fold or flatter the test. Extra rows get no fold: they train in every fold and never appear in the OOF
predictions or their metrics (the Cassava 2019 + 2020 merge).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd

from podium.config import DataConfig
from podium.core.errors import PodiumError, list_some
from podium.data.folders.ingest import Competition, load_competition

MAIN = "train"  # the source name of the competition's own training rows
EXTRA = "extra:"  # the prefix of every extra folder's source name: never equal to MAIN


def extra_source(folder: str | Path, taken: set[str]) -> str:
    """The source tag of an extra folder: ``extra:<name>`` (``extra:<name>-2`` ... when two folders share a name)."""
    name = Path(folder).expanduser().resolve().name
    tag, k = f"{EXTRA}{name}", 1
    while tag in taken:
        k += 1
        tag = f"{EXTRA}{name}-{k}"
    return tag


def label_map(cfg: DataConfig) -> dict[str, str]:
    """``data.extra_label_map`` entries ``old=new`` as a dict."""
    out = {}
    for item in cfg.extra_label_map:
        old, sep, new = item.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise PodiumError(f"data.extra_label_map entry {item!r} must look like old_name=class_name.")
        out[old.strip()] = new.strip()
    return out


def named_classes(comp: Competition) -> dict[str, str]:
    """Lower-cased class names -> class, from the competition's class names (Cassava's JSON map): the full name,
    the name without its parenthesised abbreviation and the abbreviation (``cbb`` -> ``0``), so that the 2019
    folders named by disease map onto the 2020 integers."""
    out: dict[str, str] = {}
    for cls, name in comp.class_names.items():
        short = re.search(r"\(([^()]+)\)\s*$", name)
        for key in (name, re.sub(r"\s*\([^()]*\)\s*$", "", name), short.group(1) if short else ""):
            if key.strip():
                out.setdefault(key.strip().lower(), cls)
    return out


def with_extra(comp: Competition, cfg: DataConfig) -> Competition:
    """``comp`` with the rows of every ``data.extra`` folder appended (a ``source`` column on all rows). Labels are
    renamed by ``data.extra_label_map``, else through the competition's class names (``named_classes``)."""
    if not cfg.extra:
        return comp
    named = {k: v for k, v in named_classes(comp).items() if k not in {c.lower() for c in comp.classes}}
    rename = {**named, **{k.lower(): v for k, v in label_map(cfg).items()}}
    frames, targets = [comp.train.assign(source=MAIN)], [comp.targets]
    taken: set[str] = set()
    for folder in cfg.extra:
        extra = load_competition(folder, DataConfig(check_images=False), check=False)
        name = extra_source(folder, taken)
        taken.add(name)
        onehot = extra.task.onehot(extra.targets, len(extra.classes))
        lists = [[rename.get(extra.classes[c].lower(), extra.classes[c]) for c in np.flatnonzero(row)]
                 for row in onehot]
        unknown = sorted({label for labels in lists for label in labels} - set(comp.classes))
        if unknown:
            raise PodiumError(f"data.extra folder {folder} has labels that are not classes of the competition: "
                              f"{list_some(unknown)} (classes: {list_some(list(comp.classes))}). Map them with "
                              "data.extra_label_map=old=new, or leave that folder out.")
        # The competition's task turns label lists into its own targets (and refuses, say, several labels per row for
        # a single-label task); one row per class is appended so that a folder of one class passes its checks.
        ys = comp.task.from_labels([*lists, *([c] for c in comp.classes)], comp.classes)[:len(lists)]
        frames.append(extra.train[["id", "path"]].assign(id=name + "/" + extra.train["id"].astype(str), source=name))
        targets.append(ys)
    train = pd.concat(frames, ignore_index=True)
    clash = train["id"][train["id"].duplicated()].tolist()
    if clash:
        raise PodiumError(f"data.extra: ids {list_some(clash)} occur twice; rename the competition's ids or the "
                          "extra folder.")
    return dataclasses.replace(comp, train=train, targets=np.concatenate(targets))


def leaking_extra_rows(comp: Competition, duplicates: pd.DataFrame) -> np.ndarray:
    """Positions of extra rows in a duplicate cluster with any competition image (training or test)."""
    if "source" not in comp.train.columns or not len(duplicates):
        return np.zeros(0, dtype=np.int64)
    extra_ids = set(comp.train["id"][comp.train["source"] != MAIN])
    is_extra = duplicates["id"].isin(extra_ids) & (duplicates["split"] == "train")
    shared = set(duplicates.loc[~is_extra, "cluster"])
    leaking = set(duplicates.loc[is_extra & duplicates["cluster"].isin(shared), "id"])
    return np.flatnonzero(comp.train["id"].isin(leaking).to_numpy())


def is_main(comp: Competition) -> np.ndarray:
    """Which training rows are the competition's own (all of them without data.extra)."""
    if "source" not in comp.train.columns:
        return np.ones(len(comp.train), dtype=bool)
    return (comp.train["source"] == MAIN).to_numpy()
