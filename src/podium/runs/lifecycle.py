"""A run's lifecycle: it ends ``done``, ``interrupted`` (Ctrl-C, SIGTERM; resumable), ``failed`` (with its reason) or
``pruned`` (stopped on purpose by its caller: a search pruning a trial), and run.json and the experiment log say
which. A process killed outright (SIGKILL, a lost machine) cannot say anything; ``Run.status`` reads such a run as
interrupted once its process is gone.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from podium.core.console import Reporter
from podium.core.errors import Interrupted, PodiumError
from podium.runs.run import Run


class Pruned(Exception):
    """Raised inside a run (by its ``on_epoch`` hook) to stop it on purpose: the run is marked ``pruned`` with the
    message as its reason, not ``failed``, and the exception goes on to the caller that asked for it."""


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(None, signum)


@contextmanager
def lifecycle(run: Run, reporter: Reporter) -> Iterator[None]:
    """Run the block as the body of ``run``: SIGTERM is handled like Ctrl-C, and a run that does not finish is marked
    interrupted, pruned or failed (one line of reason) before the exception goes on.

    Files are written atomically, so an interrupt in the middle of a write leaves the previous complete file.
    """
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupted) if main_thread else None
    try:
        yield
    except (KeyboardInterrupt, Interrupted) as e:
        signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
        stopped = Interrupted(run.path, signum)
        run.set_status("interrupted", reason=signal.Signals(signum).name)
        reporter.print(str(stopped), style="yellow")
        raise stopped from None
    except Pruned as e:
        run.set_status("pruned", reason=str(e))
        raise
    except PodiumError as e:
        run.set_status("failed", reason=str(e))
        raise
    except Exception as e:
        run.set_status("failed", reason=f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"[:300])
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
