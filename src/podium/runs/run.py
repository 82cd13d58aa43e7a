"""``Run``: the one owner of a run folder. Nothing else knows its layout; training writes through it, and prediction,
resume, ensembling and reporting read through it.

```
<runs root>/<name>-<timestamp>/
  run.json                 what the run is and its status (running, done, interrupted, failed, pruned) + reason,
                           where its time went (timings) and its latest prediction's throughput (inference)
  config.yaml              the resolved config
  folds.csv                id, fold, label: computed once, reused on resume
  duplicates.csv           duplicate clusters found by the integrity check (when any)
  fold{k}/                 each fold's checkpoints, logs and out-of-fold predictions (runs.fold_files)
  oof.csv                  out-of-fold probabilities of every finished fold, keyed by id
  decisions.json           run-level decisions fitted on the OOF predictions (e.g. the multilabel threshold)
  metrics.json             overall, per-class and per-fold scores
  suspects.csv             labels the OOF predictions contradict (id, fold, given, suggested, quality, source)
  test_predictions.csv     probabilities per test id;  submission.csv: in the sample's format, validated
  test_predictions_folds.csv  each fold model's test probabilities (fold, id, classes): honest pseudo-labels
  predictions-<folder>.csv `podium predict --images <folder>`: ids, labels and probabilities of those images
                           (and predictions-<folder>-folds.csv, each fold model's; names: runs.predictions)
  train.log                the console output
  report.html              the run's report (podium.reporting), self-contained
  export/model.onnx        the ONNX graph of podium export; export/export.json: its parity report
  export/bundle/           an ensemble of mixed preprocessing exported as a bundle (runs.bundle.Bundle owns it)
```

Only the main process writes (``writer``): every write method is a no-op elsewhere, so callers never check ranks.
The experiment log row lives in ``podium.db`` beside the run folder, whatever the current directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from podium.config import PodiumConfig, config_hash, dump_yaml, from_dict
from podium.core.errors import PodiumError
from podium.core.io import write_csv, write_json, write_text, write_with
from podium.runs.files import alive, git_commit, new_folder, pack_folder, read_csv, read_json, unpack_folder
from podium.runs.fold_files import FoldFiles
from podium.runs.log import list_runs, record_run
from podium.runs.predictions import PredictionFiles
from podium.tasks.task import Task

STATUSES = ("running", "done", "interrupted", "failed", "pruned")  # pruned: a search stopped it (runs.lifecycle)
OOF_KEYS = ("id", "fold", "label")  # the columns every reader of oof.csv joins on


@dataclass(frozen=True)
class OofRows:
    """Out-of-fold predictions as training or a blend holds them, one entry per predicted training row;
    ``Run.write_oof`` makes the columns of oof.csv from them."""

    ids: Sequence[str] | np.ndarray
    folds: np.ndarray
    targets: np.ndarray  # in the task's own form (class indices, multi-hot rows, grades)
    probs: np.ndarray
    task: Task
    classes: Sequence[str]
    source: np.ndarray | None = None  # each row's origin (train, pseudo) when the data mixes them

    def table(self) -> pd.DataFrame:
        """id, fold, [source], label (the true label as text), one probability column per class and the task's extra
        columns (an ordinal score)."""
        table = pd.DataFrame(self.probs, columns=list(self.classes))
        for name, values in self.task.columns(self.probs).items():
            table[name] = values
        table.insert(0, "label", self.task.label_strings(self.targets, list(self.classes)))
        if self.source is not None:
            table.insert(0, "source", self.source)
        table.insert(0, "fold", self.folds)
        table.insert(0, "id", self.ids)
        return table


class Run(FoldFiles, PredictionFiles):
    """A run folder: its files (the per-fold ones in ``FoldFiles``, the prediction files in ``PredictionFiles``),
    its status and its experiment-log row."""

    def __init__(self, path: str | Path, writer: bool = True) -> None:
        self.path = Path(path).expanduser().resolve()
        self.writer = writer

    # ------------------------------------------------------------------------------------------------ open / create

    @classmethod
    def create(cls, cfg: PodiumConfig, data_dir: Path) -> Run:
        """A fresh, unique folder ``<run.root>/<name>-<timestamp>`` (call on the main process only)."""
        return cls(new_folder(cfg.run.root, cfg.run.name or f"{data_dir.name}-{cfg.model.name}"))

    @staticmethod
    def is_run(path: str | Path) -> bool:
        """Whether ``path`` is a run folder that has started (it holds run.json)."""
        return (Path(path) / "run.json").is_file()

    @classmethod
    def open(cls, path: str | Path, writer: bool = True) -> Run:
        """An existing run folder (it must hold run.json and config.yaml)."""
        run = cls(path, writer)
        if not run.path.is_dir():
            raise PodiumError(f"Run folder {path} does not exist.")
        if not (run.path / "run.json").is_file() or not (run.path / "config.yaml").is_file():
            raise PodiumError(f"{path} is not a podium run folder (no run.json or config.yaml).")
        return run

    def __repr__(self) -> str:
        score = self.metrics.get("cv_score") if (self.path / "metrics.json").is_file() else None
        shown = "" if score is None else f", cv {self.metrics['metric']} {score:.4f}"
        return f"Run({str(self.path)!r}, {self.status}{shown})"

    # ------------------------------------------------------------------------------------------------------ layout

    @property
    def runs_root(self) -> Path:
        """The runs root holding this folder and the experiment log."""
        return self.path.parent

    @property
    def log_path(self) -> Path:
        """The console log of the run."""
        return self.path / "train.log"

    # ------------------------------------------------------------------------------------------------- run record

    @property
    def config(self) -> PodiumConfig:
        """The resolved config the run was trained with (each value checked, as in a checkpoint; relations between
        keys are not re-checked, so a run made under older rules still resumes and predicts)."""
        try:
            raw = yaml.safe_load((self.path / "config.yaml").read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise PodiumError(f"{self.path / 'config.yaml'} is damaged: {e}") from None
        return from_dict(raw or {})

    @property
    def info(self) -> dict[str, Any]:
        """run.json: data folder, layout, task, classes, status, times."""
        return read_json(self.path / "run.json")

    @property
    def status(self) -> str:
        """The run's status; a run marked running whose process is gone (killed) reads as interrupted."""
        info = self.info
        status = info.get("status", "running")
        if status == "running" and info.get("host") == socket.gethostname() and not alive(info.get("pid")):
            return "interrupted"
        return status

    @property
    def data_dir(self) -> Path:
        """The data folder the run was trained on."""
        return Path(self.info["data_dir"])

    def start(self, cfg: PodiumConfig, data_dir: Path, summary: dict[str, Any]) -> None:
        """Write config.yaml and run.json and add (or update) the experiment-log row, status running."""
        if not self.writer:
            return
        write_text(self.path / "config.yaml", dump_yaml(cfg))
        started = self._info_or_empty().get("started") or time.strftime("%Y-%m-%d %H:%M:%S")
        commit = git_commit(Path.cwd())
        self._update_info({"data_dir": str(data_dir), **summary, "started": started, "status": "running",
                           "reason": "", "pid": os.getpid(), "host": socket.gethostname(), "git_commit": commit})
        self.record(name=self.path.name, started=started, status="running", data_dir=str(data_dir),
                    task=summary.get("task"), model=cfg.model.name, folds=cfg.cv.folds, epochs=cfg.train.epochs,
                    metric=summary.get("metric"), config_hash=config_hash(cfg), git_commit=commit)

    def set_status(self, status: str, reason: str = "", **extra: Any) -> None:
        """Mark the run ``status`` (with a one-line ``reason``) in run.json and in the experiment log."""
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        if not self.writer:
            return
        self._update_info({"status": status, "reason": reason, **extra})
        self.record(status=status, **{k: v for k, v in extra.items() if k in ("cv_score", "wall_s", "img_size",
                                                                                 "validated")})

    def write_timings(self, timings: dict[str, Any]) -> None:
        """Where the run's time went (``runs.timings.time_breakdown``), kept in run.json under ``timings``."""
        if self.writer:
            self._update_info({"timings": timings})

    @property
    def timings(self) -> dict[str, Any]:
        """The time breakdown of the run's last process (empty before it finished)."""
        return self._info_or_empty().get("timings", {})

    def write_inference(self, record: dict[str, Any]) -> None:
        """What the latest prediction with this run's folds measured (``runs.timings.inference_record``), kept in
        run.json under ``inference``: the throughput ``podium predict --estimate`` forecasts from."""
        if self.writer:
            self._update_info({"inference": record})

    @property
    def inference(self) -> dict[str, Any]:
        """The latest ``inference_record`` (empty for a run that never recorded one)."""
        return self._info_or_empty().get("inference", {})

    def record(self, **row: Any) -> None:
        """Insert or update this run's row of the experiment log."""
        if self.writer:
            record_run(self.runs_root, {"run_dir": str(self.path), **row})

    # ------------------------------------------------------------------------------------------------ run outputs

    def write_folds(self, folds: pd.DataFrame) -> None:
        """folds.csv (id, fold, label)."""
        self._csv("folds.csv", folds)

    @property
    def folds_path(self) -> Path:
        """folds.csv, once written."""
        return self.path / "folds.csv"

    def write_duplicates(self, clusters: pd.DataFrame) -> None:
        """duplicates.csv: every duplicate cluster found by the integrity checks (nothing when there is none)."""
        if len(clusters):
            self._csv("duplicates.csv", clusters)

    def write_oof(self, oof: OofRows | pd.DataFrame) -> None:
        """oof.csv, its columns made from ``oof`` (``OofRows.table``); a table as ``oof`` reads it is written back as
        it is."""
        table = oof.table() if isinstance(oof, OofRows) else oof
        missing = [c for c in OOF_KEYS if c not in table.columns]
        if missing:
            raise ValueError(f"an oof.csv table needs the columns {missing}; build it with OofRows")
        self._csv("oof.csv", table)

    @property
    def oof(self) -> pd.DataFrame:
        """The out-of-fold predictions keyed by id."""
        return read_csv(self.path / "oof.csv", "out-of-fold predictions (oof.csv); the run has not finished")

    def write_suspects(self, table: pd.DataFrame) -> None:
        """suspects.csv: the training labels the run's own OOF predictions contradict, worst first, and duplicate
        clusters whose labels disagree (``podium.tasks.suspects.suspect_table``)."""
        self._csv("suspects.csv", table)

    def suspects(self) -> pd.DataFrame | None:
        """suspects.csv, or None for a run that finished before suspects were written (or has not finished)."""
        path = self.path / "suspects.csv"
        if not path.is_file():
            return None
        return pd.read_csv(path, dtype={"id": str, "given": str, "suggested": str}, keep_default_na=False,
                           na_values={"quality": [""]})

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        """metrics.json."""
        if self.writer:
            write_json(self.path / "metrics.json", metrics)

    @property
    def finished(self) -> bool:
        """Whether the run got as far as its metrics (a done run; a failed one may have stopped before)."""
        return (self.path / "metrics.json").is_file()

    @property
    def has_oof(self) -> bool:
        """Whether the run's out-of-fold predictions are written."""
        return (self.path / "oof.csv").is_file()

    @property
    def metrics(self) -> dict[str, Any]:
        """metrics.json: CV score, overall, per-class and per-fold metrics."""
        return read_json(self.path / "metrics.json", "metrics (metrics.json); the run has not finished")

    def write_decisions(self, decisions: dict[str, Any]) -> None:
        """decisions.json, and the same decisions embedded in every fold checkpoint (each one carries its rule)."""
        if not self.writer:
            return
        write_json(self.path / "decisions.json", decisions)
        for fold in self.folds_done():
            ckpt = self.load_best(fold)
            if ckpt.decisions != decisions:
                self.save_best(fold, ckpt.with_decisions(decisions))

    @property
    def decisions(self) -> dict[str, Any]:
        """decisions.json (empty before the run has fitted any)."""
        path = self.path / "decisions.json"
        return read_json(path) if path.is_file() else {}

    @property
    def folds_table(self) -> pd.DataFrame:
        """folds.csv: id, fold, label."""
        return read_csv(self.folds_path, "folds (folds.csv)")

    def adopt_folds_file(self, source: Run) -> None:
        """folds.csv copied byte for byte from ``source`` (``podium merge``; training rewrites it as it reads it)."""
        if self.writer:
            write_with(self.folds_path, lambda tmp: shutil.copyfile(source.folds_path, tmp))

    def archive(self) -> bytes:
        """The whole folder as tar.gz bytes, to travel to another machine (a Ray task's run, back to the driver)."""
        return pack_folder(self.path)

    @classmethod
    def unpack(cls, archive: bytes, root: str | Path) -> Run:
        """The run folder that ``archive`` holds, unpacked under ``root`` (a folder already there is refused) and
        added to that root's experiment log."""
        run = cls(unpack_folder(archive, root))
        info = run.info
        run.record(name=run.path.name, **{k: info.get(k) for k in ("started", "status", "data_dir", "task", "metric",
                                                                   "cv_score", "wall_s", "validated")})
        return run

    INFERENCE_FILES = ("run.json", "config.yaml", "decisions.json", "metrics.json")

    def export_for_inference(self, dest: str | Path, fp16: bool = False) -> Run:
        """A copy of this run at ``dest`` with only what prediction needs: run.json, config.yaml, decisions.json,
        metrics.json and each finished fold's done.json and best.pt (EMA weights; ``fp16``: stored in half
        precision). No resume states, logs, OOF or reports (``podium pack``)."""
        copy = type(self)(dest)
        copy.path.mkdir(parents=True, exist_ok=True)
        for name in self.INFERENCE_FILES:
            if (self.path / name).is_file():
                write_with(copy.path / name, lambda tmp, name=name: shutil.copyfile(self.path / name, tmp))
        for fold in self.folds_done():
            self.copy_fold_for_inference(fold, copy, fp16)
        return copy

    # ---------------------------------------------------------------------------------------------- report inputs

    @property
    def duplicates(self) -> pd.DataFrame | None:
        """duplicates.csv (the duplicate clusters the integrity checks found), or None when there was none."""
        path = self.path / "duplicates.csv"
        return pd.read_csv(path, dtype={"id": str}) if path.is_file() else None

    @property
    def report_path(self) -> Path:
        """report.html, the run's self-contained report."""
        return self.path / "report.html"

    def write_report(self, html: str) -> Path:
        """report.html (atomically)."""
        if self.writer:
            write_text(self.report_path, html)
        return self.report_path

    # ----------------------------------------------------------------------------------------------------- export

    @property
    def onnx_path(self) -> Path:
        """export/model.onnx: the ONNX graph ``podium export`` writes by default (podium.deploy)."""
        return self.path / "export" / "model.onnx"

    @property
    def bundle_path(self) -> Path:
        """export/bundle: the folder ``podium export`` writes for an ensemble whose members prepare images
        differently (one graph per preprocessing; its files are ``runs.bundle.Bundle``'s)."""
        return self.path / "export" / "bundle"

    @property
    def export_report_path(self) -> Path:
        """export/export.json: the last export's parity report."""
        return self.path / "export" / "export.json"

    def write_export_report(self, report: dict[str, Any]) -> Path:
        """export/export.json."""
        if self.writer:
            write_json(self.export_report_path, report)
        return self.export_report_path

    # ------------------------------------------------------------------------------------------------------ files

    def _csv(self, name: str, df: pd.DataFrame) -> Path:
        path = self.path / name
        if self.writer:
            write_csv(path, df)
        return path

    def _info_or_empty(self) -> dict[str, Any]:
        path = self.path / "run.json"
        return read_json(path) if path.is_file() else {}

    def _update_info(self, values: dict[str, Any]) -> None:
        write_json(self.path / "run.json", {**self._info_or_empty(), **values})


def experiment_log(root: str | Path) -> list[dict[str, Any]]:
    """The experiment log's rows, best CV first; a row still 'running' whose process is gone (killed outright) is
    corrected to 'interrupted' on the way."""
    rows = list_runs(root)
    for row in rows:
        if row["status"] == "running" and Run.is_run(row["run_dir"]):
            status = Run(row["run_dir"]).status
            if status != "running":
                record_run(root, {"run_dir": row["run_dir"], "status": status})
                row["status"] = status
    return rows
