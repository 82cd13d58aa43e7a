"""The experiment log read for people: a leaderboard per data folder and task (scores of different data are never
ranked together, and each table names its metric), and two runs compared key by key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from podium.config import to_dict
from podium.runs.run import Run, experiment_log


def leaderboard(root: str | Path, data: str | Path | None = None, task: str | None = None) -> list[dict[str, Any]]:
    """The log's rows grouped by (data folder, task, metric, validated rows), each group best CV first:
    [{data_dir, task, metric, validated, rows}]: a holdout run (``cv.train_folds=0``) is ranked with runs scored on
    the same rows by the same metric only.

    ``data`` keeps the runs of that data folder, ``task`` those of that task.
    """
    rows = experiment_log(root)
    if data is not None:
        target = str(Path(data).expanduser().resolve())
        rows = [r for r in rows if r["data_dir"] == target]
    if task is not None:
        rows = [r for r in rows if r["task"] == task]
    groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for r in rows:  # the log is sorted best first; grouping keeps that order within each group
        done = r["status"] == "done" and r["cv_score"] is not None
        # a run without a score yet (running, failed) is listed with its data folder's and task's first group
        key = (r["data_dir"] or "", r["task"] or "", r["metric"] or "", r.get("validated") or "all folds") if done \
            else next((k for k in groups if k[:2] == (r["data_dir"] or "", r["task"] or "")),
                      (r["data_dir"] or "", r["task"] or "", r["metric"] or "", "all folds"))
        group = groups.setdefault(key, {"data_dir": key[0], "task": key[1], "metric": r["metric"],
                                        "validated": key[3], "rows": []})
        group["metric"] = group["metric"] or r["metric"]
        group["rows"].append(r)
    return list(groups.values())


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def run_numbers(run: Run) -> dict[str, Any]:
    """A run's headline numbers: CV score with and without TTA, every overall metric, speed, memory, size, wall."""
    info = run.info
    out: dict[str, Any] = {"status": run.status, "data_dir": info.get("data_dir"), "task": info.get("task")}
    for what, src in (info.get("sources") or {}).items():  # where soft, pseudo or teacher targets came from
        out[f"{what.replace('_', ' ')} from"] = src.get("name")
        out[f"{what.replace('_', ' ')} cv"] = src.get("cv_score")
        if "action" in src:  # data.suspects: what was done to how many training labels
            out[f"{what} action"] = f"{src['action']} ({src.get('rows')} rows)"
    if run.finished:
        m = run.metrics
        folds = m.get("per_fold", [])
        out.update({f"cv {m['metric']}": m["cv_score"], "cv without TTA": m.get("cv_score_no_tta"),
                    **{f"overall {k}": v for k, v in m.get("overall", {}).items()}})
        for key in ("epoch_s", "peak_mem_mb", "params"):
            values = [f[key] for f in folds if f.get(key) is not None]
            out[key] = max(values) if values else None
    out["wall_s"] = info.get("wall_s")
    return out


def compare(a: str | Path, b: str | Path) -> dict[str, list[tuple[str, Any, Any]]]:
    """The config keys whose values differ between two runs, and their numbers side by side."""
    run_a, run_b = Run.open(a), Run.open(b)
    ca, cb = _flat(to_dict(run_a.config)), _flat(to_dict(run_b.config))
    config = [(k, ca.get(k), cb.get(k)) for k in dict.fromkeys([*ca, *cb]) if ca.get(k) != cb.get(k)]
    na, nb = run_numbers(run_a), run_numbers(run_b)
    numbers = [(k, na.get(k), nb.get(k)) for k in dict.fromkeys([*na, *nb])]
    return {"config": config, "numbers": numbers}
