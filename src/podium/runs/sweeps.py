"""``SweepFolder``: the one owner of a sweep's folder, ``<run.root>/sweeps/<name>/``, written by ``podium sweep`` alone
or shared through a storage (``podium.multirun.sweep``, ``podium.multirun.shared_sweep``).

```
<run.root>/sweeps/<name>/
  sweep.json    what the sweep is: data folder, axes, the run name of every combination (and, when the grid is
                shared, the storage URL and the study that holds it)
  sweep.csv     the sweep table: one row per combination (axis values, scores, speed, memory, status)
```

The combinations' runs are ordinary run folders beside ``sweeps/``, each owned by its ``Run``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from podium.core.io import write_csv, write_json

SWEEPS = "sweeps"


class SweepFolder:
    """A sweep's folder: its description (sweep.json) and its table (sweep.csv), written here only."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()

    @classmethod
    def at(cls, runs_root: str | Path, name: str) -> SweepFolder:
        """The folder of sweep ``name`` under the runs root (created when it is first written)."""
        return cls(Path(runs_root).expanduser().resolve() / SWEEPS / name)

    @property
    def name(self) -> str:
        """The sweep's name."""
        return self.path.name

    @property
    def table_path(self) -> Path:
        """sweep.csv."""
        return self.path / "sweep.csv"

    def write_plan(self, data_dir: Path, axes: dict[str, list[str]], runs: list[str], **shared: str) -> None:
        """sweep.json: the data folder, the axes, each combination's run name, and ``shared`` (storage, study) when
        the grid is shared."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.path / "sweep.json", {"data_dir": str(data_dir), "axes": axes, **shared, "runs": runs})

    def write_table(self, table: pd.DataFrame) -> Path:
        """sweep.csv (atomically)."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_csv(self.table_path, table)
        return self.table_path

    def __repr__(self) -> str:
        return f"SweepFolder({str(self.path)!r})"
