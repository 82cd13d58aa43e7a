"""Where podium keeps caches (image checks, decoded images): ``$PODIUM_CACHE`` or ``~/.cache/podium``.

Data folders are often read-only (Kaggle's /kaggle/input), so caches never go next to the data.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(sub: str, override: str = "") -> Path:
    """The cache folder ``sub`` under ``override`` (a config value), ``$PODIUM_CACHE`` or ``~/.cache/podium``."""
    root = Path(override or os.environ.get("PODIUM_CACHE") or Path.home() / ".cache" / "podium").expanduser()
    path = root / sub
    path.mkdir(parents=True, exist_ok=True)
    return path
