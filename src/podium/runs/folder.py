"""Run folders: ``<root>/<name>-<timestamp>/`` holding everything a run produced, and ``run.json`` saying what it is."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from podium.config import PodiumConfig, load_config
from podium.errors import PodiumError
from podium.io import write_json


def new_run_dir(cfg: PodiumConfig, data_dir: Path) -> Path:
    """A fresh, unique run folder under the runs root."""
    name = cfg.run.name or f"{data_dir.name}-{cfg.model.name}"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = Path(cfg.run.root).expanduser().resolve()
    path = root / f"{name}-{stamp}"
    k = 2
    while path.exists():
        path, k = root / f"{name}-{stamp}-{k}", k + 1
    path.mkdir(parents=True)
    return path


def write_run_info(run_dir: Path, info: dict[str, Any]) -> None:
    """Write (or update) ``run.json``."""
    write_json(run_dir / "run.json", {**read_run_info(run_dir, missing_ok=True), **info})


def read_run_info(run_dir: Path, missing_ok: bool = False) -> dict[str, Any]:
    """Read ``run.json`` of a run folder."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        if missing_ok:
            return {}
        raise PodiumError(f"{run_dir} is not a podium run folder (no run.json).")
    return json.loads(path.read_text(encoding="utf-8"))


def run_config(run_dir: Path) -> PodiumConfig:
    """The resolved config saved in a run folder."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise PodiumError(f"{run_dir} has no config.yaml; it is not a podium run folder.")
    return load_config(path)


def git_commit(where: Path) -> str | None:
    """The commit of the git checkout at ``where`` (with '+dirty' for local changes), or None outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], cwd=where, capture_output=True, text=True,
                               timeout=5)
        return sha.stdout.strip()[:12] + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
