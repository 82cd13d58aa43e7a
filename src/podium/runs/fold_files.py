"""The per-fold files of a run folder, part of ``Run``: each fold's folder with its best checkpoint, its resume state,
its epoch and learning-rate logs, its out-of-fold predictions and the summary that marks it finished.

```
fold{k}/best.pt          Checkpoint of the fold's best epoch (EMA weights), with the run's decisions once known
fold{k}/last.pt          ResumeState after the latest finished epoch (deleted when the fold is done)
fold{k}/log.csv          one row per epoch
fold{k}/lr.csv           the learning rate of every optimiser update (epoch, step, lr, backbone_lr)
fold{k}/oof.csv          the fold's out-of-fold probabilities; fold{k}/done.json marks the fold finished
fold{k}/oof_plain.csv    the same without TTA (when TTA is on), for the CV score without TTA
```
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from podium.core.errors import PodiumError
from podium.core.io import write_csv, write_json
from podium.runs.checkpoint import Checkpoint, ResumeState, load_checkpoint, load_state, save_checkpoint, save_state
from podium.runs.files import read_csv, read_json

DONE, BEST, STATE, LOG, LR = "done.json", "best.pt", "last.pt", "log.csv", "lr.csv"
OOF, PLAIN = "oof.csv", "oof_plain.csv"


def fold_numbers(root: Path, marker: str) -> list[int]:
    """The folds under ``root`` whose folder holds ``marker``, in order."""
    found = (p.parent.name[4:] for p in root.glob(f"fold*/{marker}"))
    return sorted(int(k) for k in found if k.isdigit())


def optional_csv(path: Path) -> pd.DataFrame | None:
    """A CSV that older run folders may lack, or None."""
    return pd.read_csv(path) if path.is_file() else None


class FoldFiles:
    """What a run folder holds per fold; mixed into ``Run`` (which provides ``path`` and ``writer``)."""

    path: Path
    writer: bool

    def fold_dir(self, fold: int) -> Path:
        """The folder of fold ``fold``."""
        return self.path / f"fold{fold}"

    def folds_done(self) -> list[int]:
        """Finished folds, in order."""
        return fold_numbers(self.path, DONE)

    def fold_summary(self, fold: int) -> dict[str, Any] | None:
        """The summary of a finished fold, or None while it is not finished."""
        path = self.fold_dir(fold) / DONE
        return read_json(path) if path.is_file() else None

    def fold_oof(self, fold: int, plain: bool = False) -> pd.DataFrame | None:
        """A finished fold's out-of-fold probabilities (``plain``: without TTA; None when the fold has no such
        file: it was trained without TTA, or before the file existed)."""
        if plain:
            path = self.fold_dir(fold) / PLAIN
            return read_csv(path, f"fold {fold}'s predictions without TTA") if path.is_file() else None
        return read_csv(self.fold_dir(fold) / OOF, f"fold {fold}'s predictions")

    def save_best(self, fold: int, ckpt: Checkpoint) -> None:
        """fold{k}/best.pt."""
        if self.writer:
            save_checkpoint(self.fold_dir(fold) / BEST, ckpt)

    def load_best(self, fold: int) -> Checkpoint:
        """fold{k}/best.pt."""
        return load_checkpoint(self.fold_dir(fold) / BEST)

    def checkpoints(self) -> list[Checkpoint]:
        """The best checkpoint of every finished fold (at least one)."""
        folds = self.folds_done() or fold_numbers(self.path, BEST)
        if not folds:
            raise PodiumError(f"{self.path} has no trained fold yet; train it (or `podium resume` it) first.")
        return [self.load_best(k) for k in folds]

    def save_state(self, fold: int, state: ResumeState) -> None:
        """fold{k}/last.pt, the state after the latest finished epoch."""
        if self.writer:
            save_state(self.fold_dir(fold) / STATE, state)

    def load_state(self, fold: int) -> ResumeState | None:
        """The fold's resume state; None when there is none. A damaged one raises PodiumError naming the file."""
        path = self.fold_dir(fold) / STATE
        return load_state(path) if path.exists() else None

    def write_fold_log(self, fold: int, rows: list[dict[str, Any]]) -> None:
        """fold{k}/log.csv, one row per epoch."""
        if self.writer:
            write_csv(self.fold_dir(fold) / LOG, pd.DataFrame(rows))

    def fold_log(self, fold: int) -> pd.DataFrame | None:
        """fold{k}/log.csv (one row per epoch), or None before the fold's first epoch."""
        return optional_csv(self.fold_dir(fold) / LOG)

    def write_lr(self, fold: int, epoch: int, lrs: list[float], backbone_lrs: list[float] | None = None) -> None:
        """fold{k}/lr.csv: the rows of epochs before ``epoch`` kept, then epoch ``epoch``'s learning rate per
        optimiser update, the head's (``lr``) and the backbone's (``backbone_lr``) (a resumed epoch rewrites its own
        rows, so the file matches an uninterrupted run's)."""
        if not self.writer:
            return
        old = self.lr_log(fold)
        old = pd.DataFrame(columns=["epoch", "step", "lr", "backbone_lr"]) if old is None else old
        old = old[old["epoch"] < epoch]
        start = int(old["step"].max()) + 1 if len(old) else 0
        new = pd.DataFrame({"epoch": epoch, "step": range(start, start + len(lrs)), "lr": lrs,
                            "backbone_lr": lrs if backbone_lrs is None else backbone_lrs})
        write_csv(self.fold_dir(fold) / LR, pd.concat([old, new], ignore_index=True) if len(old) else new)

    def lr_log(self, fold: int) -> pd.DataFrame | None:
        """fold{k}/lr.csv (epoch, step, lr, backbone_lr), or None for a run made before it was written."""
        return optional_csv(self.fold_dir(fold) / LR)

    def finish_fold(self, fold: int, oof: pd.DataFrame, summary: dict[str, Any], plain: pd.DataFrame | None = None
                    ) -> None:
        """Write the fold's OOF predictions (and ``plain``, the same without TTA), mark it done and drop its resume
        state."""
        if not self.writer:
            return
        write_csv(self.fold_dir(fold) / OOF, oof)
        if plain is not None:
            write_csv(self.fold_dir(fold) / PLAIN, plain)
        write_json(self.fold_dir(fold) / DONE, summary)
        (self.fold_dir(fold) / STATE).unlink(missing_ok=True)

    def adopt_fold(self, fold: int, source: FoldFiles) -> None:
        """Copy finished fold ``fold`` of ``source`` (a run of the same config and folds, trained elsewhere) into
        this folder, whole or not at all (``podium merge``)."""
        if not self.writer:
            return
        if source.fold_summary(fold) is None:
            raise PodiumError(f"Fold {fold} of {source.path} is not finished; resume that run first.")
        tmp = self.path / f".fold{fold}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source.fold_dir(fold), tmp, ignore=shutil.ignore_patterns(STATE))
        os.replace(tmp, self.fold_dir(fold))

    def copy_fold_for_inference(self, fold: int, dest: FoldFiles, fp16: bool = False) -> None:
        """Finished fold ``fold``'s best checkpoint (``fp16``: in half precision) and summary, written into ``dest``
        (``Run.export_for_inference``)."""
        ckpt = self.load_best(fold)
        dest.save_best(fold, ckpt.half() if fp16 else ckpt)
        write_json(dest.fold_dir(fold) / DONE, self.fold_summary(fold))
