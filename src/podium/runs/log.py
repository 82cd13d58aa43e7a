"""The experiment log: an SQLite database ``podium.db`` in the runs root, one row per run."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

COLUMNS = {
    "run_dir": "TEXT PRIMARY KEY", "name": "TEXT", "started": "TEXT", "status": "TEXT", "data_dir": "TEXT",
    "task": "TEXT", "model": "TEXT", "img_size": "INTEGER", "folds": "INTEGER", "epochs": "INTEGER",
    "metric": "TEXT", "cv_score": "REAL", "wall_s": "REAL", "config_hash": "TEXT", "git_commit": "TEXT",
    "validated": "TEXT",  # the rows cv_score was computed on: "all folds", or "folds 0 of 5" (cv.train_folds)
}
DB_NAME = "podium.db"


def _connect(root: Path) -> sqlite3.Connection:
    root.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(root / DB_NAME, timeout=30)
    cols = ", ".join(f"{k} {v}" for k, v in COLUMNS.items())
    con.execute(f"CREATE TABLE IF NOT EXISTS runs ({cols})")
    have = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
    for k in [k for k in COLUMNS if k not in have]:  # a log written before the column existed
        try:
            con.execute(f"ALTER TABLE runs ADD COLUMN {k} {COLUMNS[k]}")
        except sqlite3.OperationalError:  # another process (a sweep's worker) added it just now
            pass
    return con


def record_run(root: str | Path, row: dict[str, Any]) -> None:
    """Insert or update the row of ``row['run_dir']`` (columns not given keep their value)."""
    row = {k: v for k, v in row.items() if k in COLUMNS}
    with closing(_connect(Path(root))) as con, con:
        keys = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        updates = ", ".join(f"{k}=excluded.{k}" for k in row if k != "run_dir")
        con.execute(f"INSERT INTO runs ({keys}) VALUES ({marks}) ON CONFLICT(run_dir) DO UPDATE SET {updates}",
                    list(row.values()))


def list_runs(root: str | Path) -> list[dict[str, Any]]:
    """All runs, best CV score first in its metric's direction (a lower-is-better ``cv.metric`` such as log_loss
    ranks low scores first; runs without a score last, newest first among equals)."""
    from podium.tasks.metrics import metric_key

    path = Path(root) / DB_NAME
    if not path.is_file():
        return []
    with closing(_connect(Path(root))) as con:
        con.row_factory = sqlite3.Row
        rows = [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY started DESC").fetchall()]
    keys = {m: metric_key(m, 1.0) > 0 for m in {r["metric"] or "" for r in rows}}  # metric -> higher is better
    return sorted(rows, key=lambda r: (r["cv_score"] is None,
                                       -(r["cv_score"] or 0.0) if keys[r["metric"] or ""] else (r["cv_score"] or 0.0)))
