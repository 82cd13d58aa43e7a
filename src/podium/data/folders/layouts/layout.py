"""What a dataset layout is: a registered reader (``Layout``) that says whether it applies to a folder and reads its
training rows as ids (with image paths where the layout knows them) and raw labels (``RawLabels``); ``LAYOUTS``
holds them, and ``detect_layout`` picks the one a folder has. Everything after the raw labels (classes, task,
targets, test set) is shared, in podium.data.folders.ingest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from podium.config import DataConfig
from podium.core.errors import PodiumError
from podium.core.registry import Registry
from podium.data.folders.columns import ColumnRoles


@dataclass(frozen=True)
class RawLabels:
    """What a layout read: one list of label strings per row, or a 0/1 matrix with its column names."""

    lists: list[list[str]] | None = None
    onehot: np.ndarray | None = None
    columns: tuple[str, ...] = ()
    roles: ColumnRoles | None = None  # csv layout: what each column of train.csv was taken to be
    source: str = ""  # the file the labels came from (the csv layout's labels CSV), named in errors about its ids
    notes: tuple[str, ...] = ()  # what the layout decided where the folder left it open, each with its override


def _claims_nothing(cfg: DataConfig) -> bool:
    return False


@dataclass(frozen=True)
class Layout:
    """A registered dataset layout: ``detect(root, cfg)`` says whether it applies, ``read`` reads it (a table with
    ``id``, and ``path`` where the layout finds the images itself, else they are found by id); ``claims(cfg)`` says
    whether the config asks for it by one of its own keys (``data.label_from=name``), before any detection."""

    detect: Callable[[Path, DataConfig], bool]
    read: Callable[[Path, DataConfig], tuple[pd.DataFrame, RawLabels]]
    claims: Callable[[DataConfig], bool] = _claims_nothing


LAYOUTS: Registry[Layout] = Registry("layout")


def detect_layout(root: Path, cfg: DataConfig) -> str:
    """``data.layout``, or with ``auto`` the first registered layout the config claims, else the first that applies
    to ``root``."""
    if cfg.layout != "auto":
        return cfg.layout
    claimed = [n for n in LAYOUTS if LAYOUTS.get(n).claims(cfg)]
    if claimed:
        return claimed[0]
    # the first that applies: later layouts' detection (reading candidate CSVs, listing names) is never paid for
    name = next((n for n in LAYOUTS if LAYOUTS.get(n).detect(root, cfg)), None)
    if name is None:
        raise PodiumError(
            f"{root} has neither {cfg.train_csv} nor class folders (train/<class>/*.jpg or <class>/*.jpg), nor a CSV "
            "whose ids name the training images, nor labels in file names (train/cat.0.jpg). Point podium at the "
            "competition folder, or set data.layout and data.train_csv (or data.label_pattern)."
        )
    return name
