"""Plain file helpers of the run and ensemble owners (``Run``, ``Ensemble``): fresh folders, JSON and CSV readers
with one-line errors, provenance (git commit), whether a run's process is alive, and a folder packed as tar.gz bytes
to travel between machines (and unpacked). Nothing outside ``podium.runs``
uses them: other code reads a folder through its owner."""

from __future__ import annotations

import io
import itertools
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from podium.core.errors import PodiumError
from podium.core.io import check_folder


def new_folder(root: str | Path, name: str) -> Path:
    """Create and return a fresh, unique folder ``<root>/<name>-<timestamp>`` (a run's or an ensemble's).

    The folder is created exclusively (``mkdir`` without ``exist_ok``): two processes that start the same run name in
    the same second each get their own folder (``-2``, ``-3``, ...) instead of racing between a check and a create.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = check_folder(root, "run.root")  # also a file further up the path
    base.mkdir(parents=True, exist_ok=True)
    for k in itertools.count(1):
        path = base / (f"{name}-{stamp}" if k == 1 else f"{name}-{stamp}-{k}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise AssertionError("unreachable")


def read_json(path: Path, what: str = "") -> dict[str, Any]:
    """A JSON file as a dict; a missing or damaged file is one line naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PodiumError(f"No {what or path.name} in {path.parent}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PodiumError(f"{path} is damaged ({e}); it is not valid JSON.") from None


def read_csv(path: Path, what: str) -> pd.DataFrame:
    """A CSV with string ids; a missing file is one line naming ``what``."""
    if not path.is_file():
        raise PodiumError(f"No {what} at {path}.")
    return pd.read_csv(path, dtype={"id": str})


def alive(pid: Any) -> bool:
    """Whether process ``pid`` runs on this machine (a run's process killed with SIGKILL leaves 'running' behind)."""
    if not isinstance(pid, int):
        return True  # unknown: trust the record
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def pack_folder(path: Path) -> bytes:
    """A folder as tar.gz bytes, its own name as the archive's top folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(path, arcname=path.name)
    return buffer.getvalue()


def unpack_folder(archive: bytes, root: str | Path) -> Path:
    """The folder of ``pack_folder``'s bytes, unpacked under ``root``; whole or not at all (unpacked beside it, then
    renamed), an existing folder refused, and nothing written outside it (``filter="data"``)."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        members = tar.getmembers()
        name = members[0].name.split("/")[0]
        target = Path(root).expanduser().resolve() / name
        if target.exists():
            raise PodiumError(f"Cannot bring {name} here: {target} already exists.")
        tmp = target.with_name(f".{name}.part")
        shutil.rmtree(tmp, ignore_errors=True)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tmp, filter="data")
        else:  # Python before 3.10.12: the same rule by hand, plain files and folders inside the folder only
            if any(m.name.startswith("/") or ".." in Path(m.name).parts or not (m.isfile() or m.isdir())
                   for m in members):
                raise PodiumError(f"The archive of {name} holds paths outside its folder; not unpacked.")
            tar.extractall(tmp, members)
    (tmp / name).rename(target)
    shutil.rmtree(tmp, ignore_errors=True)
    return target
