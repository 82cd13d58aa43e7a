"""The run's console and train.log print a user's text verbatim: no markup, no emoji codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.text import Text

from podium.core.console import Reporter

USER_TEXT = "cv.metric=a:b:c:d [red]cat[/red] :dog: C:\\runs\\[x]"


def test_lines_are_printed_and_logged_verbatim(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    reporter = Reporter(tmp_path / "train.log")
    reporter.print(USER_TEXT)
    reporter.print(USER_TEXT, style="bold")
    reporter.warn(USER_TEXT)
    reporter.print(Text.assemble(("run/[b]", "bold"), " :b:"))
    out = capsys.readouterr().out.splitlines()
    assert out == [USER_TEXT, USER_TEXT, f"warning: {USER_TEXT}", "run/[b] :b:"]
    logged = [line.split(" ", 2)[2] for line in (tmp_path / "train.log").read_text(encoding="utf-8").splitlines()]
    assert logged == out
