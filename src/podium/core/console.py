"""Console and log-file output of a run, passed explicitly to whoever reports (``podium.report`` is the API function
that writes report.html; this module is named ``console`` so that the two never clash).

A line is printed verbatim: paths, keys, values and class names are the user's own text, which rich would otherwise
read as markup (``[red]``) or emoji codes (``cv.metric=a:b:c`` printed as ``a🅱c``). Styled parts are given as
``rich.text.Text`` (or ``style``), never as markup inside a string.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.text import Text


class Reporter:
    """Prints to the console (main process only) and appends the same lines to a log file."""

    def __init__(self, log_path: Path | None = None, enabled: bool = True) -> None:
        self.console = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
        self.log_path = log_path
        self.enabled = enabled

    def print(self, message: str | Text, style: str = "") -> None:
        """One line to the console and the log file: a string verbatim (in ``style``), or a Text with its styles."""
        if not self.enabled:
            return
        text = message if isinstance(message, Text) else Text(message, style=style)
        self.console.print(text)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text.plain}\n")

    def warn(self, message: str) -> None:
        """A ``warning:`` line (the word in yellow), the message verbatim."""
        self.print(Text.assemble(("warning:", "yellow"), " ", message))
