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
}
DB_NAME = "podium.db"


def _connect(root: Path) -> sqlite3.Connection:
    root.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(root / DB_NAME, timeout=30)
    cols = ", ".join(f"{k} {v}" for k, v in COLUMNS.items())
    con.execute(f"CREATE TABLE IF NOT EXISTS runs ({cols})")
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
    """All runs, best CV score first (runs without a score last, newest first among them)."""
    path = Path(root) / DB_NAME
    if not path.is_file():
        return []
    with closing(_connect(Path(root))) as con:
        con.row_factory = sqlite3.Row
        rows = con.execute("SELECT * FROM runs ORDER BY cv_score IS NULL, cv_score DESC, started DESC").fetchall()
    return [dict(r) for r in rows]
