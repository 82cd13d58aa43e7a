"""Progress of long steps: a bar on a terminal, plain lines every few seconds elsewhere (CI logs, nohup)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from podium.config import PodiumConfig, merge
from podium.core.progress import line_seconds, track
from podium.pipeline import train


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    items = list(track(range(4), 4, "check images", console=Console(file=out, force_terminal=False), every=0))
    lines = out.getvalue().splitlines()
    assert items == [0, 1, 2, 3]
    assert [ln.split(" (")[0] for ln in lines[:4]] == [f"check images: {k}/4" for k in (1, 2, 3, 4)]
    assert lines[-1].startswith("check images: 4/4 (100%)") and lines[-1].endswith("done")


def test_no_line_before_the_interval_and_a_bar_on_a_terminal() -> None:
    quiet = io.StringIO()
    assert list(track(range(3), 3, "cache", console=Console(file=quiet, force_terminal=False), every=3600)) == [0, 1, 2]
    assert quiet.getvalue() == ""
    term = io.StringIO()
    assert list(track(range(3), 3, "cache", console=Console(file=term, force_terminal=True, width=80))) == [0, 1, 2]
    assert "cache" in term.getvalue() and "cache: 1/3" not in term.getvalue()  # a live bar, not lines


def test_interval_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("PODIUM_PROGRESS_SECONDS", "2.5")
    assert line_seconds() == 2.5
    monkeypatch.setenv("PODIUM_PROGRESS_SECONDS", "soon")
    assert line_seconds() == 5.0


def test_a_run_without_a_terminal_prints_progress_lines(single_dir: Path, tiny: tuple[str, ...], capsys,
                                                         monkeypatch) -> None:
    monkeypatch.setenv("PODIUM_PROGRESS_SECONDS", "0")  # a line per step: the tiny run is faster than 5 s
    train(single_dir, merge(PodiumConfig(), list(tiny)))
    out = capsys.readouterr().out
    for step in ("check images: ", "fold 0 epoch 1/1: ", "fold 0 validate: ", "fold 1 OOF: ", "predict fold 1: "):
        assert step in out, step
    # the cache is filled by the check pass on a first run (one decode per image), or built with its own progress
    assert "cache 40 px: " in out or "one decode each" in out
