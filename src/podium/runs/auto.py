"""``AutoFolder``: the one owner of a ``podium auto`` folder, ``<run.root>/auto-<data>-<timestamp>/``.

```
<run.root>/auto-<data>-<timestamp>/
  plan.json       the plan printed before any training (and each re-plan's version, ``replans``)
  summary.json    each step's predicted and actual seconds, the budget used, the final folder and its CV score
  summary.md      the same as a table
  submission.csv  a copy of the final run's or ensemble's validated submission
```

The runs and the ensemble it made are ordinary folders beside it, each owned by its ``Run`` or ``Ensemble``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from podium.core.io import atomic_path, write_json, write_text
from podium.runs.files import new_folder, read_json


class AutoFolder:
    """An auto folder: plan.json, summary.json and summary.md, and the final submission, written here only."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()

    @classmethod
    def create(cls, runs_root: str | Path, data_name: str) -> AutoFolder:
        """A fresh, unique folder ``<runs_root>/auto-<data_name>-<timestamp>``."""
        return cls(new_folder(runs_root, f"auto-{data_name}"))

    @property
    def plan_path(self) -> Path:
        """plan.json."""
        return self.path / "plan.json"

    @property
    def summary_path(self) -> Path:
        """summary.json."""
        return self.path / "summary.json"

    @property
    def submission_path(self) -> Path:
        """submission.csv, the final submission's copy."""
        return self.path / "submission.csv"

    def write_plan(self, plan: dict[str, Any]) -> Path:
        """plan.json (atomically)."""
        return write_json(self.plan_path, plan)

    @property
    def plan(self) -> dict[str, Any]:
        """plan.json's content."""
        return read_json(self.plan_path, "the auto plan")

    def write_summary(self, summary: dict[str, Any], table: str) -> Path:
        """summary.json and its table summary.md (each atomically)."""
        write_text(self.path / "summary.md", table + "\n")
        return write_json(self.summary_path, summary)

    @property
    def summary(self) -> dict[str, Any]:
        """summary.json's content."""
        return read_json(self.summary_path, "the auto summary")

    def copy_submission(self, source: Path) -> Path:
        """The final folder's validated submission, copied here (atomically)."""
        with atomic_path(self.submission_path) as tmp:
            shutil.copyfile(source, tmp)
        return self.submission_path

    def __repr__(self) -> str:
        return f"AutoFolder({str(self.path)!r})"
