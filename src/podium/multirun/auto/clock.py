"""Time for ``podium auto``: the ``Clock`` it reads (injectable, so tests run on a fake one) and budgets as people
write them (``90s``, ``15m``, ``2h``, ``1h30m``)."""

from __future__ import annotations

import re
import time
from typing import Protocol

from podium.core.errors import PodiumError

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_BUDGET = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?:in)?)?(?:(\d+(?:\.\d+)?)s)?")


class Clock(Protocol):
    """Seconds from an arbitrary start, never going back."""

    def now(self) -> float:
        """The current time in seconds."""
        ...


class MonotonicClock:
    """The machine's monotonic clock."""

    def now(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()


def parse_budget(text: str | float | int, option: str = "--budget") -> float:
    """Seconds in a budget: a number of seconds, or ``90s``, ``15m``, ``2h``, ``1h30m`` (units h, m, s); ``option``
    names the flag in the error."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        raw = str(text).strip().lower().replace(" ", "")
        match = _BUDGET.fullmatch(raw)
        if not raw or match is None or not any(match.groups()):
            raise PodiumError(f"{option} {text!r} is not a duration; write it like 90s, 15m, 2h or 1h30m.")
        seconds = sum(float(v) * unit for v, unit in zip(match.groups(), _UNITS.values()) if v)
    if seconds <= 0:
        raise PodiumError(f"{option} {text!r} must be longer than zero; write it like 90s, 15m, 2h or 1h30m.")
    return seconds


def minutes(seconds: float) -> str:
    """Seconds as minutes with one decimal, as the plan and the summary show them."""
    return f"{seconds / 60:.1f}"


def shown_budget(seconds: float) -> str:
    """A budget in the form ``parse_budget`` reads (``1h30m``, ``15m``, ``45s``), rounded up to whole seconds."""
    s = int(-(-seconds // 1))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (sec, "s")) if v) or "0s"
