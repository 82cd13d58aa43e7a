"""User-facing errors.

A ``PodiumError`` is a mistake in the user's input (a config key, a data folder, a run folder). The CLI prints its
message on one line and exits with status 2; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import signal
from pathlib import Path


class PodiumError(Exception):
    """An error in the user's input, with a message that names the file or row and says how to fix it."""


def list_some(items: list[str] | tuple[str, ...], limit: int = 10) -> str:
    """Join the first ``limit`` items for a message, saying how many were left out."""
    items = [str(i) for i in items]
    shown = ", ".join(items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


class Interrupted(BaseException):
    """A run stopped by SIGINT (Ctrl-C) or SIGTERM; what it finished is saved and ``podium resume`` continues it.

    A BaseException like KeyboardInterrupt (``except Exception`` does not swallow it), but not a KeyboardInterrupt:
    the command-line framework would turn that into a bare exit code before podium's exit status is set.
    """

    def __init__(self, run_path: Path | None, signum: int) -> None:
        self.run_path, self.signum = run_path, signum
        where = f"; continue with `podium resume {run_path}`" if run_path else ""
        super().__init__(f"interrupted by {signal.Signals(signum).name}: finished folds and epochs are saved{where}")


def install_hint(extra: str) -> str:
    """The command that installs podium's optional ``extra`` the way podium was installed here: ``pip install -e
    '<checkout>[extra]'`` for an editable checkout, else ``pip install 'podium[extra]'`` (a wheel or an index)."""
    import json
    from importlib import metadata
    from urllib.parse import unquote, urlparse

    try:
        direct = metadata.distribution("podium").read_text("direct_url.json")
        info = json.loads(direct) if direct else {}
    except (metadata.PackageNotFoundError, ValueError):
        info = {}
    if info.get("dir_info", {}).get("editable") and str(info.get("url", "")).startswith("file://"):
        return f"pip install -e '{unquote(urlparse(info['url']).path)}[{extra}]'"
    return f"pip install 'podium[{extra}]'"

