"""The prediction files of a run (or ensemble) folder, part of ``Run``: the test set's blended probabilities and
submission, each fold model's own test probabilities, and the same two tables for any folder of images.

Each fold model's probabilities are kept beside the fold average because a later run's pseudo-labels are honest
only when fold k's pseudo rows are labelled by a model that never saw fold k (``podium.inference.pseudo``): the
average of every fold model has seen every training row.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from podium.core.io import write_csv, write_with
from podium.runs.files import read_csv


def prediction_file(images: str = "", folds: bool = False) -> str:
    """The name of every prediction file: the blended (``folds``: each fold model's) probabilities of the test set
    (``images`` empty) or of the folder of images named ``images``.

    test set         test_predictions.csv        test_predictions_folds.csv
    folder <name>    predictions-<name>.csv      predictions-<name>-folds.csv

    The test set's per-fold file joins with ``_`` where a folder's joins with ``-``: run folders already written (and
    Kaggle datasets made of them) hold both names, and a renamed file would make their pseudo-labels silently fall
    back to the fold average.
    """
    stem, joint = (f"predictions-{images}", "-") if images else ("test_predictions", "_")
    return f"{stem}{joint}folds.csv" if folds else f"{stem}.csv"


class PredictionFiles:
    """What a run folder holds of predictions; mixed into ``Run`` (which provides ``path`` and ``writer``)."""

    path: Path
    writer: bool

    @property
    def submission_path(self) -> Path:
        """Where the validated submission is (once the run has predicted its test set)."""
        return self.path / "submission.csv"

    @property
    def test_predictions_path(self) -> Path:
        """Per-class test probabilities."""
        return self.path / prediction_file()

    def predictions_path(self, images: str = "", folds: bool = False) -> Path:
        """The blended (``folds``: per fold model) probabilities of the test set (``images`` empty) or of the folder
        of images named ``images``."""
        return self.path / prediction_file(images, folds)

    def write_test_predictions(self, table: pd.DataFrame, by_fold: pd.DataFrame | None = None) -> Path:
        """test_predictions.csv, and test_predictions_folds.csv (fold, id, probabilities) when given."""
        if self.writer:
            write_csv(self.test_predictions_path, table)
            if by_fold is not None:
                write_csv(self.predictions_path(folds=True), by_fold)
        return self.test_predictions_path

    def write_submission(self, write: Callable[[Path], None]) -> Path:
        """submission.csv, written (and validated) by ``write(path)``, a submission format's writer."""
        if self.writer:
            write(self.submission_path)
        return self.submission_path

    def write_predictions(self, folder: str, table: pd.DataFrame, out: str | Path | None = None,
                          by_fold: pd.DataFrame | None = None) -> Path:
        """The predictions of the images below ``folder`` (a folder name): ``predictions-<folder>.csv`` in the run
        folder, or ``out`` when given. ``by_fold`` (fold, id, probabilities) goes to
        ``predictions-<folder>-folds.csv`` in the run folder, and only when the table does."""
        path = Path(out) if out else self.predictions_path(folder)
        if self.writer:
            write_csv(path, table)
            if by_fold is not None and not out:
                write_csv(self.predictions_path(folder, folds=True), by_fold)
        return path

    def copy_submission(self, out: str | Path) -> Path:
        """A copy of submission.csv at ``out`` (written atomically)."""
        if self.writer:
            write_with(out, lambda tmp: shutil.copyfile(self.submission_path, tmp))
        return Path(out)

    @property
    def test_predictions(self) -> pd.DataFrame:
        """test_predictions.csv: id, decoded label(s) and one probability column per class."""
        return read_csv(self.test_predictions_path, "test predictions (test_predictions.csv)")

    def predictions(self, images: str = "") -> pd.DataFrame:
        """The blended predictions of the test set (``images`` empty) or of the folder named ``images``."""
        path = self.predictions_path(images)
        return read_csv(path, f"predictions ({path.name})")

    def fold_predictions(self, images: str = "") -> pd.DataFrame | None:
        """Each fold model's predictions (fold, id, probabilities) of the test set or of the folder ``images``; None
        when the folder has none (predicted before these files existed, or by an ensemble whose members lack them)."""
        path = self.predictions_path(images, folds=True)
        return read_csv(path, f"per-fold predictions ({path.name})") if path.is_file() else None
