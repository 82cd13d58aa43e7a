from pathlib import Path

from podium.runs.log import list_runs, record_run


def test_log_upserts_and_sorts_by_score(tmp_path: Path) -> None:
    record_run(tmp_path, {"run_dir": "/r/a", "name": "a", "status": "running", "started": "2026-01-01"})
    record_run(tmp_path, {"run_dir": "/r/b", "name": "b", "status": "done", "cv_score": 0.7, "started": "2026-01-02"})
    record_run(tmp_path, {"run_dir": "/r/a", "status": "done", "cv_score": 0.9})
    record_run(tmp_path, {"run_dir": "/r/c", "name": "c", "status": "running", "started": "2026-01-03"})
    rows = list_runs(tmp_path)
    assert [r["name"] for r in rows] == ["a", "b", "c"]
    assert rows[0]["status"] == "done" and rows[0]["started"] == "2026-01-01"
    assert list_runs(tmp_path / "none") == []
