"""Peak memory of a stretch of work (a fold): resident memory of the process on CPU, allocated memory on CUDA.

On Linux the resident high-water mark (``VmHWM``) is reset by writing 5 to ``/proc/self/clear_refs``, so each fold of
a sweep run in one process reports its own peak; elsewhere the process's lifetime peak (``getrusage``) is reported.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def reset_peak(device: str) -> None:
    """Start measuring the peak memory of ``device`` ('cuda' or anything else: the process's resident memory)."""
    if device == "cuda" and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        pass  # not Linux, or not allowed: the lifetime peak is reported


def peak_mb(device: str) -> float:
    """The peak memory in MiB since ``reset_peak``: torch's max allocated on CUDA, the resident peak otherwise."""
    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def parameter_count(model: torch.nn.Module) -> int:
    """Number of parameters of ``model``."""
    return int(sum(p.numel() for p in model.parameters()))
