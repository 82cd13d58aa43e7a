"""Progress of every long step, in one place: a rich bar on a terminal and in Jupyter (rich renders it as a live
widget there), and a plain line every few seconds when stdout is neither (CI logs, ``nohup``, Kaggle's saved
notebook logs), so those logs stay readable.

``track`` wraps an iterable (image checks, cache build, validation, OOF and test prediction, inspect, report);
``progress_bar`` is the training bar with loss and throughput fields. ``PODIUM_PROGRESS_SECONDS`` sets the interval
of the plain lines (default 5 s).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")
DEFAULT_SECONDS = 5.0


def interactive(console: Console) -> bool:
    """Whether ``console`` shows live bars (a terminal or a Jupyter notebook)."""
    return console.is_terminal or console.is_jupyter


def line_seconds() -> float:
    """Seconds between two plain progress lines (``PODIUM_PROGRESS_SECONDS``, default 5)."""
    try:
        return max(0.0, float(os.environ.get("PODIUM_PROGRESS_SECONDS", DEFAULT_SECONDS)))
    except ValueError:
        return DEFAULT_SECONDS


def track(items: Iterable[T], total: int | None, description: str, enabled: bool = True,
          console: Console | None = None, every: float | None = None, advance: object = None) -> Iterator[T]:
    """Yield ``items`` while showing progress: a transient bar on a terminal or in Jupyter, otherwise a line
    ``description: done/total (pct) elapsed`` every ``every`` seconds (and a last one when any was printed).

    ``advance``: a function of an item giving how many units it counts for (a batch's size, say); 1 otherwise.
    """
    console = console or Console()
    if not enabled:
        yield from items
        return
    if interactive(console):
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      transient=True, console=console) as bar:
            task = bar.add_task(description, total=total)
            for item in items:
                yield item
                bar.update(task, advance=advance(item) if callable(advance) else 1)
        return
    every = line_seconds() if every is None else every
    t0 = last = time.monotonic()
    done, printed = 0, False
    for item in items:
        yield item
        done += advance(item) if callable(advance) else 1
        now = time.monotonic()
        if now - last >= every:
            console.print(_line(description, done, total, now - t0), highlight=False, soft_wrap=True)
            last, printed = now, True
    if printed:
        console.print(_line(description, done, total, time.monotonic() - t0) + " done", highlight=False,
                      soft_wrap=True)


def _line(description: str, done: int, total: int | None, seconds: float) -> str:
    if total:
        return f"{description}: {done}/{total} ({100 * done / total:.0f}%) {seconds:.0f} s"
    return f"{description}: {done} {seconds:.0f} s"


class LineProgress:
    """The training bar's interface (``add_task``, ``update``) for non-interactive output: a line every
    ``line_seconds()`` with the step count, elapsed time, loss and throughput."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self.console, self.enabled, self.every = console, enabled, line_seconds()
        self.tasks: dict[int, dict] = {}

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: int | None = None, **fields: float) -> int:
        """A new task; returns its id."""
        now = time.monotonic()
        self.tasks[len(self.tasks)] = {"description": description, "total": total, "done": 0, "t0": now,
                                       "last": now, **fields}
        return len(self.tasks) - 1

    def update(self, task_id: int, advance: int = 1, **fields: float) -> None:
        """Advance the task; print a line when the interval has passed."""
        t = self.tasks[task_id]
        t["done"] += advance
        t.update(fields)
        now = time.monotonic()
        if self.enabled and now - t["last"] >= self.every:
            t["last"] = now
            extra = f"  loss {t['loss']:.4f}  {t['ips']:.0f} img/s" if "loss" in t else ""
            self.console.print(_line(t["description"], t["done"], t["total"], now - t["t0"]) + extra,
                               highlight=False, soft_wrap=True)


def progress_bar(enabled: bool) -> Progress | LineProgress:
    """The training bar, with loss and throughput fields, on terminals and in Jupyter; elsewhere a plain line every
    few seconds (the reporter adds one line per epoch)."""
    console = Console()
    if not interactive(console):
        return LineProgress(console, enabled)
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  {task.fields[ips]:.0f} img/s"),
        disable=not enabled, transient=True, console=console,
    )
