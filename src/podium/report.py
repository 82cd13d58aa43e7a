"""Console and log-file output of a run, passed explicitly to whoever reports.

This module's name is also the API's ``podium.report(run)`` (which writes report.html): once this module is imported,
``podium.report`` is the module, so the module itself is callable and forwards to ``podium.api.report``.
"""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

from rich.console import Console


class Reporter:
    """Prints to the console (main process only) and appends the same lines to a log file."""

    def __init__(self, log_path: Path | None = None, enabled: bool = True) -> None:
        self.console = Console(highlight=False, soft_wrap=True)
        self.log_path = log_path
        self.enabled = enabled

    def print(self, message: str) -> None:
        """One line to the console and the log file."""
        if not self.enabled:
            return
        self.console.print(message)
        if self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {Console().render_str(message).plain}\n")


class _CallableModule(types.ModuleType):
    """``podium.report(run)``: the module forwards a call to ``podium.api.report``."""

    def __call__(self, run: str | Path) -> Path:
        from podium.api import report

        return report(run)


sys.modules[__name__].__class__ = _CallableModule
