"""Task bodies for tests/test_fanout.py and tests/test_auto_remote.py, imported by Ray's worker processes (the tests
put tests/ on their PYTHONPATH)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any


def dies_once_in_fold_1(marker: str, data_dir: str, raw_cfg: dict[str, Any], threads: int) -> dict[str, Any]:
    """``sweep.run_combination``, except that the first attempt's worker is killed outright (SIGKILL, as the kernel's
    OOM killer or a lost machine would) when fold 1 starts; ``marker`` then holds fold 0's done.json stamp, so the
    test can tell that the retry resumed the run instead of training fold 0 again."""
    import podium.pipeline
    from podium.multirun.sweep import run_combination

    real = podium.pipeline.fit_fold

    def fit(fold: int, comp: Any, folds: Any, cfg: Any, run: Any, *args: Any, **kwargs: Any) -> Any:
        if fold == 1 and not Path(marker).exists():
            Path(marker).write_text(str((run.path / "fold0" / "done.json").stat().st_mtime_ns))
            os.kill(os.getpid(), signal.SIGKILL)
        return real(fold, comp, folds, cfg, run, *args, **kwargs)

    podium.pipeline.fit_fold = fit
    try:
        return run_combination(data_dir, raw_cfg, threads)
    finally:
        podium.pipeline.fit_fold = real


def auto_run_dies_once_in_fold_1(marker: str, data_dir: str, raw_cfg: dict[str, Any], threads: int,
                                 epochs: Any) -> dict[str, Any]:
    """``auto.remote.node_train`` (a planned run of ``auto --ray``) whose first attempt's worker is killed when fold 1
    starts, as ``dies_once_in_fold_1`` does."""
    import podium.pipeline
    from podium.multirun.auto.remote import node_train

    real = podium.pipeline.fit_fold

    def fit(fold: int, comp: Any, folds: Any, cfg: Any, run: Any, *args: Any, **kwargs: Any) -> Any:
        if fold == 1 and not Path(marker).exists():
            Path(marker).write_text(str((run.path / "fold0" / "done.json").stat().st_mtime_ns))
            os.kill(os.getpid(), signal.SIGKILL)
        return real(fold, comp, folds, cfg, run, *args, **kwargs)

    podium.pipeline.fit_fold = fit
    try:
        return node_train(data_dir, raw_cfg, threads, epochs)
    finally:
        podium.pipeline.fit_fold = real
