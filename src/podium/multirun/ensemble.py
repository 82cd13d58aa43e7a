"""``ensemble``: several finished runs of one data folder -> one blended, validated submission.

    choose_members   run folders named by the user, or the top K of the experiment log (one data folder, filters)
    load_members     every member is a finished run of the same data, task and classes, on the same folds
    blend_oof        the blend's weights (fitted ones cross-fitted fold-wise for the honest score), decisions refitted
                     on the blended OOF through the task, every member's and the blend's scores
    blend_test       the members' saved test predictions (or their checkpoints' predictions), blended
    write            the ensemble folder (``podium.runs.ensemble.Ensemble``), only once everything above succeeded
    report           report.html in the ensemble folder (``podium.reporting``); a failure there is a warning line

Every mistake in the input is found before the folder exists, so a refused ensemble leaves nothing behind.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from podium.config import PodiumConfig, merge, to_dict
from podium.core.errors import PodiumError, list_some
from podium.inference.blends import BLENDS, Blend, BlendResult, cross_fit
from podium.runs.ensemble import Ensemble, is_ensemble
from podium.runs.run import OofRows, Run, experiment_log
from podium.tasks.crossfit import decided_score, honest_score, parts_note
from podium.tasks.metrics import fit_decisions, metric_key, per_class, resolve_metric, score
from podium.tasks.task import Task, get_task
from podium.validation import validate


@dataclass(frozen=True)
class Members:
    """The members' shared rows: ids and folds (folds.csv order), targets, and each member's OOF probabilities."""

    runs: list[Run]
    data_dir: Path
    task: Task
    classes: list[str]
    ids: list[str]
    folds: np.ndarray
    y: np.ndarray
    probs: list[np.ndarray]


def ensemble(members: list[str | Path] | tuple[str | Path, ...] = (), top: int = 0, data: str | Path | None = None,
             where: list[str] | tuple[str, ...] = (), blend: str = "weights", root: str | Path = "runs",
             name: str = "", device: str = "auto") -> Ensemble:
    """Blend finished runs into an ensemble folder beside them: ``members`` (run folders) or the ``top`` K runs of
    the experiment log in ``root`` (of the data folder ``data``, matching ``where`` config values key=value)."""
    t0 = time.time()
    blender = BLENDS.get(blend)
    runs = choose_members(members, top, data, where, root)
    m = load_members(runs)
    metrics, result = blend_oof(m, blender, blend)
    test = blend_test(m, blender, result.weights, device, result.fold_weights)
    ens = write(m, blend, metrics, result, test, name, time.time() - t0)
    from podium.core.console import Reporter
    from podium.reporting import report_after_training

    report_after_training(ens, Reporter())  # the ensemble is complete and valid whatever the report does
    return ens


def choose_members(members: list[str | Path] | tuple[str | Path, ...], top: int, data: str | Path | None,
                   where: list[str] | tuple[str, ...], root: str | Path) -> list[Run]:
    """The member runs: the folders given, or the best ``top`` finished runs of one data folder in the log."""
    if members and top:
        raise PodiumError("Name the member runs or use --top K, not both.")
    if (data is not None or where) and not top:
        raise PodiumError("--data and --where choose runs from the experiment log; use them with --top K.")
    if members:
        runs = [open_member(p) for p in members]
    elif top:
        runs = top_runs(top, data, where, root)
    else:
        raise PodiumError("Name at least two run folders, or choose them with --top K.")
    if len(runs) < 2:
        raise PodiumError(f"An ensemble needs at least two runs; got {len(runs)}.")
    if len({r.path for r in runs}) < len(runs):
        raise PodiumError("The same run is named twice; name each member once.")
    return runs


def open_member(path: str | Path) -> Run:
    """A finished run folder (not an ensemble), or a one-line error naming the folder."""
    if is_ensemble(path):
        raise PodiumError(f"{path} is an ensemble; name the runs it was made of instead.")
    run = Run.open(path)
    refuse_running(run)
    if run.status != "done" or not run.has_oof:
        raise PodiumError(f"{path} is not a finished run (status {run.status}); finish it with `podium resume`.")
    return run


def refuse_running(run: Run) -> None:
    """A one-line refusal of a run that is still training (status running and, on this machine, its process alive):
    its folds and OOF predictions are still being written."""
    if run.status == "running":
        info = run.info
        raise PodiumError(f"{run.path} is still running (pid {info.get('pid')} on {info.get('host')}); wait until it "
                          "has finished, or stop it and `podium resume` it, then name it again.")


def config_matcher(where: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` filters as {key: typed value}, each key and value checked like a config override."""
    base = PodiumConfig()
    wanted = {}
    for item in where:
        merged = validate(merge(base, [item]))  # unknown keys and bad values fail here, naming the key
        key = item.split("=", 1)[0].strip()
        section, field = key.split(".")
        wanted[key] = to_dict(merged)[section][field]
    return wanted


def top_runs(k: int, data: str | Path | None, where: list[str] | tuple[str, ...], root: str | Path) -> list[Run]:
    """The ``k`` best finished runs (not ensembles) of one data folder, matching ``where``."""
    wanted = config_matcher(where)
    rows = [r for r in experiment_log(root) if r["status"] == "done" and r["cv_score"] is not None
            and not is_ensemble(r["run_dir"]) and Path(r["run_dir"]).is_dir()]
    if data is not None:
        target = str(Path(data).expanduser().resolve())
        rows = [r for r in rows if r["data_dir"] == target]
    datasets = sorted({r["data_dir"] for r in rows})
    if len(datasets) > 1:
        raise PodiumError(f"The experiment log in {root} holds runs of {len(datasets)} data folders "
                          f"({list_some(datasets, 3)}); choose one with --data DIR.")
    metrics = sorted({r["metric"] for r in rows})
    if len(metrics) > 1:
        raise PodiumError(f"The runs to choose from are scored by {len(metrics)} metrics ({', '.join(metrics)}); "
                          "choose runs of one cv.metric with --where cv.metric=NAME.")
    rows.sort(key=lambda r: -metric_key(r["metric"], r["cv_score"]))  # best first, in the metric's direction
    runs = []
    for r in rows:
        run = Run(r["run_dir"])
        cfg = to_dict(run.config)
        if all(cfg[key.split(".")[0]][key.split(".")[1]] == value for key, value in wanted.items()):
            runs.append(run)
    if len(runs) < 2:
        what = f" of {data}" if data is not None else ""
        raise PodiumError(f"Only {len(runs)} finished run(s){what} in {root} match"
                          f"{' ' + ', '.join(where) if where else ''}; an ensemble needs two.")
    return runs[:k]


def load_members(runs: list[Run]) -> Members:
    """Check that the members are runs of one data folder, task and class list on the same folds; read their OOF."""
    first, info = runs[0], runs[0].info
    for run in runs[1:]:
        other = run.info
        for key in ("data_dir", "task", "classes", "metric"):
            if other.get(key) != info.get(key):
                raise PodiumError(f"{run.path.name} and {first.path.name} differ in {key} ({other.get(key)} vs "
                                  f"{info.get(key)}); an ensemble blends runs of one data folder and task.")
    folds = first.folds_table
    for run in runs[1:]:
        check_same_folds(first, folds, run)
    shared = validated_rows(runs, folds)
    rows = folds[folds["id"].isin(shared)]
    ids = rows["id"].tolist()
    classes, task = list(info["classes"]), resolve_metric(get_task(info["task"]), info.get("metric", "auto"))
    probs = [run.oof.set_index("id").loc[ids, classes].to_numpy(dtype=np.float64) for run in runs]
    labels = first.oof.set_index("id").loc[ids, "label"].fillna("").astype(str)
    y = task.from_labels([[s] if s in classes else s.split() for s in labels], classes)
    return Members(runs, Path(info["data_dir"]), task, classes, ids, rows["fold"].to_numpy(), y, probs)


def validated_rows(runs: list[Run], folds: pd.DataFrame) -> set[str]:
    """The ids every member validated (all folds, or the folds ``cv.train_folds`` trained: a holdout run): the
    same for every member, or a one-line refusal naming the member that validated other rows."""
    fold_of = dict(zip(folds["id"], folds["fold"]))

    def described(ids: set[str]) -> str:
        return f"{len(ids)} rows of fold(s) {', '.join(str(f) for f in sorted({int(fold_of[i]) for i in ids}))}"

    first = set(runs[0].oof["id"])
    for run in runs[1:]:
        mine = set(run.oof["id"])
        if mine != first:
            raise PodiumError(f"{run.path.name} validated other rows than {runs[0].path.name} ({described(mine)} vs "
                              f"{described(first)}); blend runs that trained the same folds (cv.train_folds).")
    return first


def check_same_folds(first: Run, folds: pd.DataFrame, run: Run) -> None:
    """Refuse a member whose folds.csv differs from the first member's, naming the first differing id."""
    mine = dict(zip(folds["id"], folds["fold"]))
    theirs = dict(zip(run.folds_table["id"], run.folds_table["fold"]))
    for i in [*folds["id"], *[i for i in theirs if i not in mine]]:
        if mine.get(i) != theirs.get(i):
            raise PodiumError(f"{run.path.name} has other folds than {first.path.name}: id {i} is in fold "
                              f"{theirs.get(i, 'none')} there and {mine.get(i, 'none')} here. Ensemble runs made "
                              "with the same cv.folds and cv.seed (or one cv.folds_file).")


def duplicate_groups(run: Run, ids: list[str]) -> np.ndarray:
    """A group per row of ``ids``: the duplicate cluster it belongs to (the integrity check's duplicates.csv), else
    its own."""
    dups = run.duplicates
    dups = dups[dups["split"] == "train"] if dups is not None and "split" in dups.columns else dups
    cluster = {} if dups is None or not len(dups) else dict(zip(dups["id"].astype(str), dups["cluster"].astype(int)))
    return np.array([len(ids) + cluster[i] if i in cluster else n for n, i in enumerate(map(str, ids))],
                    dtype=np.int64)


def blend_oof(m: Members, blender: Blend, blend: str) -> tuple[dict[str, Any], BlendResult]:
    """The blend's weights and scores: each member's, the blend's honest and in-sample ones, with decisions refitted
    on the blended OOF through the task. Honest: each part's rows (a fold, or a holdout's chunk) blended with the
    weights and decoded with the decisions both fitted on the other parts' rows (``honest_score``)."""
    task = m.task
    predict = m.runs[0].config.predict  # how the members fit their decisions: the blend fits its own alike
    result = cross_fit(blender, task, m.y, m.probs, m.folds, duplicate_groups(m.runs[0], m.ids))
    on = parts_note(m.folds, result.parts)
    decisions = fit_decisions(task, m.y, result.probs, predict)
    honest_decisions = fit_decisions(task, m.y, result.honest, predict)
    honest = score(task, m.y, result.honest, decisions=honest_decisions)
    per_fold = [{"fold": int(f), **score(task, m.y[m.folds == f], result.honest[m.folds == f],
                                         decisions=honest_decisions)} for f in np.unique(m.folds)]
    in_sample = score(task, m.y, result.probs, decisions=decisions)
    blended = honest_score(task, m.y, result.honest, result.parts, predict, honest_decisions, on=on,
                           part_probs=result.part_probs(blender, task, m.probs))
    member_rows = []
    for run, p, w in zip(m.runs, m.probs, result.weights):
        own_decisions = fit_decisions(task, m.y, p, predict)
        own = score(task, m.y, p, decisions=own_decisions)
        own_cv = honest_score(task, m.y, p, result.parts, predict, own_decisions, on=on).cv_score  # as its run's
        member_rows.append({"run_dir": str(run.path), "name": run.path.name, "weight": float(w),
                            "cv_score": own_cv, "overall": own})
    best = max((r["cv_score"] for r in member_rows), key=lambda v: metric_key(task.primary, v))
    metrics = {
        "task": task.name, "metric": task.primary, "blend": blend, "cv_score": blended.cv_score,
        "cv_score_plain": blended.plain, "cv_score_in_sample": decided_score(task, m.y, result.probs, decisions),
        "cross_fit": blended.cross_fit, "best_member_score": best,
        "gain_over_best": blended.cv_score - best,  # negative is a gain for a lower-is-better metric
        "threshold": decisions.get("threshold"),
        "decisions": decisions, "oof_rows": len(m.ids), "overall": honest, "overall_in_sample": in_sample,
        "per_class": per_class(task, m.y, result.honest, m.classes, decisions=honest_decisions),
        "per_fold": per_fold,  # the honest blend's scores on each fold's rows
        "decision_scores": task.decision_report(m.y, result.honest, honest_decisions),
        "members": member_rows, "fold_weights": result.fold_weights,
    }
    return metrics, result


def blend_test(m: Members, blender: Blend, weights: np.ndarray, device: str,
               fold_weights: dict[int, list[float]] | None = None) -> Any:
    """The blended test predictions (a ``Prediction`` without decisions yet), or None when the data has no test set.

    Each member's saved test_predictions.csv is used when it exists; otherwise its checkpoints predict the test set.
    Each fold's blend of the members' fold models is kept too (``blend_folds``) when every member has them.
    """
    from podium.data.folders.ingest import load_competition
    from podium.engine.accel import inference_accelerator
    from podium.inference.checkpoints import Prediction, fold_arrays, predict_checkpoints
    from podium.inference.members import blend_folds

    cfg = m.runs[0].config
    if not m.data_dir.is_dir():
        raise PodiumError(f"The members' data folder {m.data_dir} is gone; it holds the test set and the sample.")
    comp = load_competition(m.data_dir, cfg.data, check=False)
    if comp.test is None:
        return None
    ids, paths = comp.test["id"].tolist(), comp.test["path"].tolist()
    probs, by_fold, accelerator = [], [], None
    for run in m.runs:
        if run.test_predictions_path.is_file():
            table = run.test_predictions.set_index("id")
            missing = [i for i in ids if i not in table.index]
            if missing:
                raise PodiumError(f"{run.test_predictions_path} lacks test ids {list_some(missing)}; predict it "
                                  f"again with `podium predict {run.path}`.")
            probs.append(table.loc[ids, m.classes].to_numpy(dtype=np.float64))
            by_fold.append(fold_arrays(run.fold_predictions(), ids, m.classes))
            continue
        if accelerator is None:
            accelerator = inference_accelerator(device, cfg)
        pred = predict_checkpoints(run.checkpoints(), ids, paths, accelerator)
        probs.append(pred.probs)
        by_fold.append(pred.by_fold)
    blended = blender.combine(probs, weights, m.task)
    folds = blend_folds(by_fold, blender.combine, weights, fold_weights, m.task)
    return Prediction(ids, blended, m.task, m.classes, {}, folds), comp.submission


def write(m: Members, blend: str, metrics: dict[str, Any], result: BlendResult, test: Any, name: str, wall: float
          ) -> Ensemble:
    """The ensemble folder, beside the first member; removed again if any write fails, so none is half-written."""
    from podium.inference.checkpoints import Prediction, write_test_outputs

    ens = Ensemble.new(m.runs[0].runs_root, name or f"ensemble-{m.data_dir.name}-{blend}")
    try:
        members = {"blend": blend, "members": [{"run_dir": str(r.path), "name": r.path.name, "weight": float(w)}
                                               for r, w in zip(m.runs, result.weights)],
                   "fold_weights": result.fold_weights}
        ens.start_ensemble(m.data_dir, {"task": m.task.name, "classes": m.classes, "metric": m.task.primary,
                                        "blend": blend}, members)
        ens.write_folds(m.runs[0].folds_table)
        ens.write_oof(OofRows(m.ids, m.folds, m.y, result.honest, m.task, m.classes))
        ens.write_decisions(metrics["decisions"])
        ens.write_metrics(metrics)
        if test is not None:
            pred, fmt = test
            write_test_outputs(ens, Prediction(pred.ids, pred.probs, pred.task, pred.classes, metrics["decisions"],
                                               pred.by_fold), fmt)
        ens.finish_ensemble(metrics["cv_score"], wall, int(len(np.unique(m.folds))),
                            m.runs[0].metrics.get("validated", "all folds"))
    except BaseException:
        shutil.rmtree(ens.path, ignore_errors=True)
        raise
    return ens

