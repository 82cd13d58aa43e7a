"""The earlier runs a run learns from (``data.soft_labels``, ``data.pseudo``, ``train.teacher``): opened and checked
against this data's task and classes, their provenance for run.json, and the check that they used the same folds."""

from __future__ import annotations

from typing import Any

import numpy as np

from podium.core.errors import PodiumError, list_some
from podium.data.folders.extra import is_main
from podium.data.folders.ingest import Competition
from podium.runs.ensemble import open_folder
from podium.runs.run import Run


def open_source(path: str, key: str, comp: Competition) -> Run:
    """The finished run or ensemble folder named by config key ``key``, checked against this data's task and
    classes."""
    try:
        src = open_folder(path, writer=False)
    except PodiumError as e:
        raise PodiumError(f"{key}={path}: {e}") from None
    if src.status != "done":
        raise PodiumError(f"{key}={path}: the run is {src.status}, not done; use a finished run or ensemble.")
    classes = list(src.info.get("classes") or [])
    if classes and classes != list(comp.classes):
        raise PodiumError(f"{key}={path} predicts classes {list_some(classes)}, this data has "
                          f"{list_some(list(comp.classes))}; use a run of the same data.")
    return src


def provenance(src: Run) -> dict[str, Any]:
    """What a run records about a source: its folder, name, metric and CV score."""
    metrics = src.metrics if src.finished else {}
    return {"path": str(src.path), "name": src.path.name, "metric": metrics.get("metric"),
            "cv_score": metrics.get("cv_score")}


def same_folds(src: Run, comp: Competition, folds: np.ndarray, key: str, alternative: str = "") -> None:
    """Refuse a source whose folds differ from ``folds`` on the competition's own rows: its fold-k models (and so
    its OOF and per-fold predictions) would have trained on this run's validation rows."""
    main = is_main(comp)
    ids = comp.train["id"].astype(str).to_numpy()
    theirs = src.folds_table.assign(id=lambda d: d["id"].astype(str)).set_index("id")["fold"]
    unknown = [i for i in ids[main] if i not in theirs.index]
    if unknown:
        raise PodiumError(f"{key}={src.path} has no fold for {len(unknown)} training id(s) ({list_some(unknown, 5)}); "
                          "use a run of the same data.")
    moved = [(i, int(theirs[i]), int(f)) for i, f in zip(ids[main], folds[main]) if int(theirs[i]) != int(f)]
    if moved:
        i, a, b = moved[0]
        raise PodiumError(f"{key}={src.path} was trained on other folds ({len(moved)} row(s) differ, e.g. {i}: fold "
                          f"{a} there, {b} here), so its predictions would leak validation rows. Train it with "
                          f"the same cv.folds and cv.seed, or set cv.folds_file={src.path / 'folds.csv'}"
                          f"{', ' + alternative if alternative else ''}.")


def oof_probabilities(src: Run, comp: Competition, folds: np.ndarray, key: str) -> np.ndarray:
    """The source's OOF probabilities of the competition's own training rows, joined by id and aligned with
    ``comp.train`` (rows that are not the competition's own: NaN), after checking ids and folds."""
    main = is_main(comp)
    ids = comp.train["id"].astype(str).to_numpy()
    oof = src.oof.assign(id=lambda d: d["id"].astype(str)).set_index("id")
    missing = [i for i in ids[main] if i not in oof.index]
    if missing:
        raise PodiumError(f"{key}={src.path}: {len(missing)} training id(s) have no out-of-fold prediction there "
                          f"({list_some(missing, 5)}); the source must validate every row of this data (all folds).")
    extra = sorted(set(oof.index) - set(ids[main]))
    if extra:
        raise PodiumError(f"{key}={src.path} holds {len(extra)} OOF id(s) that are not training rows of this data "
                          f"({list_some(extra, 5)}); use a run of the same data.")
    same_folds(src, comp, folds, key)
    out = np.full((len(ids), len(comp.classes)), np.nan, dtype=np.float64)
    out[main] = oof.loc[ids[main], list(comp.classes)].to_numpy(dtype=np.float64)
    return out
