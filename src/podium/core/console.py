"""Console and log-file output of a run, passed explicitly to whoever reports (``podium.report`` is the API function
that writes report.html; this module is named ``console`` so that the two never clash)."""

from __future__ import annotations

import time
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
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {Console().render_str(message).plain}\n")
