"""The ``filenames`` layout: the label is part of each training image's file name (Dogs vs. Cats' ``train/cat.0.jpg``,
``<label>_<n>.png``). By default it is the name up to its first ``.`` or ``_``; ``data.label_pattern=REGEX`` (one
capture group, searched in the file name: fastai's ``from_name_re``) sets another. Detected when a folder has no
labels CSV and no class folders and its image names share a few such prefixes; ``data.label_from=name`` or a
``data.label_pattern`` asks for it outright."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from podium.config import DataConfig
from podium.core.errors import PodiumError, list_some
from podium.data.folders.files import TRAIN_DIRS, check_name, shown_name
from podium.data.folders.layouts.layout import Layout, RawLabels
from podium.data.pixels.images import is_image

PREFIX = re.compile(r"^([^._]+)[._]")  # matched against the name without its extension: cat.0.jpg -> cat
FEW = 0.2  # auto: at most this share of the files are distinct labels (names numbered per label), and 2 or more


def _images(folder: Path, root: Path) -> list[Path]:
    """The images directly in ``folder``, sorted."""
    with os.scandir(folder) as it:
        return sorted(Path(check_name(e.path, root)) for e in it if is_image(e.name) and e.is_file())


def _image_folder(root: Path, cfg: DataConfig) -> Path | None:
    """``data.image_dir``, else the first of the training folders that holds images itself."""
    if cfg.image_dir:
        folder = root / cfg.image_dir
        if not folder.is_dir():
            raise PodiumError(f"Image folder {folder} does not exist; fix data.image_dir.")
        return folder
    return next((root / d for d in TRAIN_DIRS if (root / d).is_dir() and _images(root / d, root)), None)


def _pattern(cfg: DataConfig) -> re.Pattern[str] | None:
    """``data.label_pattern`` compiled and checked (one capture group), or None for the default prefix rule."""
    if not cfg.label_pattern:
        return None
    try:
        pattern = re.compile(cfg.label_pattern)
    except re.error as e:
        raise PodiumError(f"data.label_pattern={cfg.label_pattern!r} is not a regular expression ({e}).") from None
    if pattern.groups != 1:
        raise PodiumError(f"data.label_pattern={cfg.label_pattern!r} has {pattern.groups} capture groups; give it "
                          "exactly one, around the label, e.g. data.label_pattern='^(.+)_\\d+\\.png$'.")
    return pattern


def _label(name: str, pattern: re.Pattern[str] | None) -> str | None:
    """The label in a file name, or None when the name does not match."""
    if pattern is None:
        match = PREFIX.match(os.path.splitext(name)[0])
    else:
        match = pattern.search(name)
    return match.group(1).strip() if match and match.group(1) and match.group(1).strip() else None


def _claims(cfg: DataConfig) -> bool:
    return cfg.label_from == "name" or bool(cfg.label_pattern)


def _detect(root: Path, cfg: DataConfig) -> bool:
    """Images whose names all start with a label, the labels few (2 or more, at most ``FEW`` of the files)."""
    folder = _image_folder(root, cfg)
    if folder is None:
        return False
    labels = [_label(p.name, None) for p in _images(folder, root)]
    distinct = set(labels)
    return None not in distinct and 2 <= len(distinct) <= max(2, FEW * len(labels))


def _read(root: Path, cfg: DataConfig) -> tuple[pd.DataFrame, RawLabels]:
    if cfg.group_col:
        raise PodiumError(f"data.group_col={cfg.group_col!r} needs a CSV layout; {root} has labels in file names.")
    folder = _image_folder(root, cfg)
    if folder is None:
        raise PodiumError(f"{root} has no folder of training images ({', '.join(TRAIN_DIRS)}) to read labels from "
                          "file names; set data.image_dir.")
    pattern = _pattern(cfg)
    rule = (f"data.label_pattern={cfg.label_pattern!r}" if pattern is not None
            else "the default rule (the name up to its first '.' or '_')")
    paths = _images(folder, root)
    if not paths:
        raise PodiumError(f"{folder} holds no images to read labels from; set data.image_dir.")
    lists = []
    for path in paths:
        label = _label(path.name, pattern)
        if label is None:
            raise PodiumError(f"{shown_name(str(path), root)} does not match {rule}, so it has no label; rename it, "
                              "or set data.label_pattern=REGEX (one capture group: the label).")
        lists.append([label])
    where = shown_name(str(folder), root)
    classes = sorted({labels[0] for labels in lists})
    note = (f"labels from file names in {where}/ by {rule}: {list_some(classes, 5)}; "
            "data.label_pattern=REGEX (one capture group) reads them otherwise.")
    table = pd.DataFrame({"id": [p.relative_to(root).as_posix() for p in paths], "path": [str(p) for p in paths]})
    return table, RawLabels(lists=lists, source=where, notes=(note,))


LAYOUT = Layout(_detect, _read, _claims)
