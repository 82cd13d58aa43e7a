"""``Ensemble``: the owner of an ensemble folder, a run-like folder made by ``podium ensemble`` from several runs.

```
<runs root>/<name>-<timestamp>/
  run.json                 kind "ensemble", data folder, task, classes, metric, status
  members.json             the blend, each member's run folder and weight, the weights fitted per fold
  folds.csv                the members' shared folds
  oof.csv                  the blend's honest out-of-fold probabilities (fitted weights: cross-fitted fold-wise)
  decisions.json           decisions refitted on the blended OOF predictions (e.g. the multilabel threshold)
  metrics.json             each member's score, the blend's honest and in-sample scores
  test_predictions.csv     blended test probabilities;  submission.csv: in the sample's format, validated
  report.html              the ensemble's report (podium.reporting), self-contained
```

It is a ``Run`` without a config or checkpoints: it writes through ``Run``'s writers, and its experiment-log row
(model ``ensemble:<blend>``) ranks with the runs of its data folder. What it lacks of a run it reads from its members
(``member_runs``: their configs, reports and duplicate clusters). ``open_folder`` opens either kind of folder;
``open_trained`` one that can predict (what export, pack and predict --data need before any work).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import pandas as pd

from podium.core.errors import PodiumError, list_some
from podium.core.io import write_json
from podium.runs.files import new_folder, read_json
from podium.runs.run import Run

MEMBERS = "members.json"


class Ensemble(Run):
    """An ensemble folder: its members and weights, and the outputs a run has (OOF, metrics, submission)."""

    @classmethod
    def new(cls, root: str | Path, name: str) -> Ensemble:
        """A fresh folder ``<root>/<name>-<timestamp>``."""
        return cls(new_folder(root, name))

    @classmethod
    def open(cls, path: str | Path, writer: bool = True) -> Ensemble:
        """An existing ensemble folder (it must hold run.json and members.json)."""
        ens = cls(path, writer)
        if not is_ensemble(ens.path):
            raise PodiumError(f"{path} is not a podium ensemble folder (no run.json or {MEMBERS}).")
        return ens

    @property
    def members(self) -> dict[str, Any]:
        """members.json: the blend, the members (run folder, name, weight) and the per-fold weights."""
        return read_json(self.path / MEMBERS)

    def member_runs(self) -> list[Run]:
        """The member runs whose folders are still there, in members.json order."""
        runs = [Run(self.member_dir(m)) for m in self.members["members"]]
        return [r for r in runs if (r.path / "run.json").is_file() and (r.path / "config.yaml").is_file()]

    def member_dir(self, entry: dict[str, Any]) -> Path:
        """A member's run folder: where it was made, else the folder of its name beside the ensemble (the runs root
        copied elsewhere, such as a Kaggle dataset or a ``podium pack``)."""
        made = Path(entry["run_dir"])
        beside = self.path.parent / entry.get("name", made.name)
        return made if (made / "run.json").is_file() or not (beside / "run.json").is_file() else beside

    INFERENCE_FILES = ("run.json", MEMBERS, "decisions.json", "metrics.json")

    @property
    def duplicates(self) -> pd.DataFrame | None:
        """The duplicate clusters of the members' data (the first member's; the members share one data folder)."""
        runs = self.member_runs()
        return runs[0].duplicates if runs else None

    def start_ensemble(self, data_dir: Path, summary: dict[str, Any], members: dict[str, Any]) -> None:
        """Write run.json (status running) and members.json; the log row is added by ``finish_ensemble``."""
        if not self.writer:
            return
        write_json(self.path / MEMBERS, members)
        self._update_info({"kind": "ensemble", "data_dir": str(data_dir), **summary,
                           "started": time.strftime("%Y-%m-%d %H:%M:%S"), "status": "running", "reason": "",
                           "pid": os.getpid(), "host": socket.gethostname()})

    def finish_ensemble(self, cv_score: float, wall_s: float, folds: int, validated: str = "all folds") -> None:
        """Mark the ensemble done and add its row to the experiment log (``validated``: the rows it was scored on)."""
        info = self.info
        self._update_info({"status": "done", "cv_score": cv_score, "wall_s": wall_s})
        self.record(name=self.path.name, started=info["started"], status="done", data_dir=info["data_dir"],
                    task=info.get("task"), model=f"ensemble:{info.get('blend')}", folds=folds,
                    metric=info.get("metric"), cv_score=cv_score, wall_s=wall_s, validated=validated)


def is_ensemble(path: str | Path) -> bool:
    """Whether ``path`` is an ensemble folder."""
    path = Path(path)
    return (path / "run.json").is_file() and (path / MEMBERS).is_file()


def open_folder(path: str | Path, writer: bool = True) -> Run:
    """An existing run or ensemble folder, opened by its owner (``Ensemble`` for an ensemble)."""
    return Ensemble.open(path, writer) if is_ensemble(path) else Run.open(path, writer)


def open_trained(path: str | Path, action: str, writer: bool = False) -> Run:
    """A run or ensemble folder with models to ``action`` with (export, pack, predict), checked before any work: a run
    needs a finished fold; an ensemble, each member run (where it was made, or beside the ensemble) with one. Else
    one line naming what is missing and the command that finishes it."""
    folder = open_folder(path, writer)
    runs = [folder]
    if isinstance(folder, Ensemble):
        entries = folder.members["members"]
        missing = [str(e["run_dir"]) for e in entries if not Run.is_run(folder.member_dir(e))]
        if missing:
            raise PodiumError(f"Ensemble {folder.path.name} lacks member run(s) {list_some(missing)}; copy them beside "
                              "the ensemble folder (podium pack does).")
        runs = [Run.open(folder.member_dir(e), writer=False) for e in entries]
    for run in runs:
        if not run.folds_done():
            raise PodiumError(f"{run.path} has no finished fold to {action}; finish one with `podium resume "
                              f"{run.path}` first.")
    return folder
