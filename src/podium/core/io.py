"""Atomic file writes: a file is either its old self or its complete new self, never half-written."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from podium.core.errors import PodiumError


def file_stamp(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """A file's (size, mtime in ns), what caches key an entry on to see that the file changed; None when it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def check_folder(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` resolved, or a one-line error when it or a folder above it is a file (so it cannot be a folder)."""
    path = Path(path).expanduser().resolve()
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise PodiumError(f"{what}={path}: {p} is a file; give a folder.")
            break
    return path


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name rather than mkstemp, so the file gets the usual permissions (mkstemp makes it 0600).
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_with(path: str | os.PathLike[str], writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write text atomically."""
    return write_with(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write JSON atomically (indented, keys in insertion order)."""
    return write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def write_csv(path: str | os.PathLike[str], df: pd.DataFrame) -> Path:
    """Write a DataFrame as CSV (no index) atomically."""
    return write_with(path, lambda p: df.to_csv(p, index=False))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def existing_file(path: str | Path, what: str) -> Path:
    """``path`` when it is a file; else one line saying it is missing or is a folder (``what``: "Search space file")."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise PodiumError(f"{what} {p} is a folder; name the file itself.")
    if not p.is_file():
        raise PodiumError(f"{what} {p} does not exist.")
    return p


def existing_folder(path: str | Path, what: str) -> Path:
    """``path`` when it is a folder; else one line saying it is missing or is a file (``what``: "Image folder")."""
    p = Path(path).expanduser()
    if p.is_file():
        raise PodiumError(f"{what} {p} is a file; name the folder that holds it ({p.parent}).")
    if not p.is_dir():
        raise PodiumError(f"{what} {p} does not exist.")
    return p

