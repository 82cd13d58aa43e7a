"""The ``folders`` layout: one folder per class, at the top or under train/, val/, valid/ or validation/ (those
splits pooled); the class is the folder's name."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from podium.config import DataConfig
from podium.core.errors import PodiumError
from podium.data.folders.files import TEST_DIRS, has_images, skipped_dir, walk_images
from podium.data.folders.layouts.layout import Layout, RawLabels

SPLIT_DIRS = ("train", "val", "valid", "validation")


def _class_dirs(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` that hold images (anywhere below them)."""
    if not folder.is_dir():
        return []
    return [d for d in sorted(p for p in folder.iterdir() if p.is_dir() and not skipped_dir(p.name)) if has_images(d)]


def _folder_splits(root: Path) -> list[Path]:
    splits = [root / s for s in SPLIT_DIRS if _class_dirs(root / s)]
    if splits:
        return splits
    if len([d for d in _class_dirs(root) if d.name not in TEST_DIRS]) >= 2:
        return [root]
    return []


def _folders_detect(root: Path, cfg: DataConfig) -> bool:
    return bool(_folder_splits(root))


def _folders_read(root: Path, cfg: DataConfig) -> tuple[pd.DataFrame, RawLabels]:
    if cfg.group_col:
        raise PodiumError(f"data.group_col={cfg.group_col!r} needs a CSV layout; {root} has class folders.")
    ids, paths, lists = [], [], []
    for split in _folder_splits(root):
        for d in _class_dirs(split):
            if split == root and d.name in TEST_DIRS:
                continue
            for p in walk_images(d, root):
                ids.append(Path(p).relative_to(root).as_posix())
                paths.append(p)
                lists.append([d.name])  # a name that is not UTF-8 stopped walk_images already
    names = sorted({labels[0] for labels in lists}, key=lambda n: (n.lower(), n))
    clash = [f"{a!r} and {b!r}" for a, b in zip(names, names[1:]) if a.lower() == b.lower()]
    if clash:
        raise PodiumError(f"Class folders {clash[0]} under {root} differ only in case, so they would be two classes; "
                          "rename one so that the same class has the same folder name everywhere.")
    if not ids:
        raise PodiumError(f"{root} has no images in class folders.")
    return pd.DataFrame({"id": ids, "path": paths}), RawLabels(lists=lists)


LAYOUT = Layout(_folders_detect, _folders_read)
