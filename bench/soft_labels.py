"""Soft labels, pseudo-labels and distillation at equal epochs: what helps at these budgets?

For plant-pathology-2021-mini (multilabel; a seeded subset of ``--rows`` training rows and the 600 test images) and
knee-oa-mini (ordinal grades 0-4; its 1500 ``train/`` images are the labelled rows and its 300 ``val/`` images,
labels dropped, are the unlabelled pool that pseudo-labels and distillation may use), each as a read-only view of
symlinks in a temporary folder, every run the same recipe: packaged ``tf_efficientnet_lite0`` ImageNet weights,
``--size`` px, ``--folds`` folds (the same folds for every run), ``--epochs`` epochs (one head-only), identity+hflip
TTA:

1. baseline;
2. soft labels from the baseline's OOF predictions (``data.soft_labels``, alpha 0.3);
3. two more runs (seeds 1 and 2) and a fitted-weights ensemble of the three;
4. pseudo-labels from that ensemble's test predictions (``data.pseudo``, soft targets, every fold): matched (fold k's
   rows labelled by the ensemble's fold-k blend, which never saw fold k: the honest default) and averaged (its fold
   average, whose models trained on the new run's validation folds: the leak the matched mode removes);
5. distillation of the ensemble into lite0 (``train.teacher``, alpha 0.5, T 2; the pseudo rows with it).

Reported: the CV score of each (the task's metric, pooled over the OOF rows: mean column-wise AUC for plant, QWK
with fitted cut points for knee), the ensemble's honest (cross-fitted) score, and seconds per run.

    flock /tmp/podium-bench.lock env PYTHONPATH=src python -m bench.soft_labels [--rows 1200] [--epochs 3]

Results: bench/results/soft_labels.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import podium
from bench.common import DATA, RESULTS, machine, show, write_results


def plant_view(root: Path, rows: int) -> Path:
    """A plant-pathology-2021-mini folder with ``rows`` training rows (seed 0) and every test image."""
    src = DATA / "plant-pathology-2021-mini"
    view = root / "plant"
    view.mkdir()
    train = pd.read_csv(src / "train.csv")
    train.sample(n=min(rows, len(train)), random_state=0).to_csv(view / "train.csv", index=False)
    for name in ("train_images", "test_images", "sample_submission.csv"):
        os.symlink(src / name, view / name)
    return view


def knee_view(root: Path) -> Path:
    """knee-oa-mini's train/ grades as class folders, and its val/ images (labels dropped) as test_images/."""
    src = DATA / "knee-oa-mini"
    view = root / "knee"
    (view / "train").mkdir(parents=True)
    (view / "test_images").mkdir()
    for grade in sorted(p.name for p in (src / "train").iterdir()):
        os.symlink(src / "train" / grade, view / "train" / grade)
    for path in sorted((src / "val").glob("*/*.png")):
        os.symlink(path, view / "test_images" / f"{path.parent.name}_{path.name}")
    return view


def recipe(args: argparse.Namespace, work: Path, *extra: str) -> list[str]:
    """The overrides every run of the bench shares."""
    return ["model.name=tf_efficientnet_lite0", "model.pretrained=packaged", f"model.img_size={args.size}",
            "train.batch_size=32", "train.threads=2", "train.num_workers=0", f"train.epochs={args.epochs}",
            f"cv.folds={args.folds}", "predict.tta=identity,hflip", "run.report=false", f"run.root={work}", *extra]


def timed(data: Path, overrides: list[str]) -> tuple[podium.Run, float]:
    """A finished run and its wall seconds."""
    t0 = time.perf_counter()
    run = podium.train(data, overrides=overrides)
    return run, time.perf_counter() - t0


def bench(name: str, data: Path, args: argparse.Namespace, work: Path, *task: str) -> dict:
    """The five recipes on one data folder."""
    out: dict = {}

    def row(key: str, run: podium.Run, seconds: float) -> None:
        out[key] = {"cv_score": run.metrics["cv_score"], "metric": run.metrics["metric"], "seconds": round(seconds)}
        print(f"{name} {key}: cv {run.metrics['metric']} {run.metrics['cv_score']:.4f} in {seconds:.0f} s",
              flush=True)

    base, s = timed(data, recipe(args, work, *task, f"run.name={name}-base"))
    row("baseline", base, s)
    soft, s = timed(data, recipe(args, work, *task, f"run.name={name}-soft", f"data.soft_labels={base.path}"))
    row("soft labels (alpha 0.3, from the baseline's OOF)", soft, s)
    members = [base]
    for seed in (1, 2):
        run, s = timed(data, recipe(args, work, *task, f"run.name={name}-seed{seed}", f"train.seed={seed}"))
        row(f"member seed {seed}", run, s)
        members.append(run)
    t0 = time.perf_counter()
    ens = podium.ensemble(*members, root=work, name=f"{name}-ens")
    out["ensemble of 3 (honest, cross-fitted)"] = {"cv_score": ens.metrics["cv_score"],
                                                   "metric": ens.metrics["metric"],
                                                   "seconds": round(time.perf_counter() - t0)}
    print(f"{name} ensemble: cv {ens.metrics['cv_score']:.4f}", flush=True)
    pseudo, s = timed(data, recipe(args, work, *task, f"run.name={name}-pseudo", f"data.pseudo={ens.path}"))
    row("pseudo-labels (soft, matched: fold k's rows from the ensemble's fold-k blend; honest)", pseudo, s)
    flat, s = timed(data, recipe(args, work, *task, f"run.name={name}-pseudo-avg", f"data.pseudo={ens.path}",
                                 "data.pseudo_folds=averaged"))
    row("pseudo-labels (soft, averaged: the ensemble's fold average; flatters the CV)", flat, s)
    kd, s = timed(data, recipe(args, work, *task, f"run.name={name}-distill", f"train.teacher={ens.path}",
                               f"data.pseudo={ens.path}"))
    row("distillation of the ensemble (alpha 0.5, T 2, with its pseudo rows)", kd, s)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1200, help="plant-pathology training rows (seeded subset)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--only", choices=("plant", "knee"), default=None)
    ap.add_argument("--name", default="soft_labels", help="results file name (a longer budget keeps its own)")
    args = ap.parse_args()
    info = machine()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="podium-soft-") as tmp:
        root = Path(tmp)
        if args.only in (None, "plant"):
            results["plant-pathology-2021-mini"] = bench("plant", plant_view(root, args.rows), args, root / "runs")
        if args.only in (None, "knee"):
            results["knee-oa-mini"] = bench("knee", knee_view(root), args, root / "runs", "data.task=ordinal")
    previous = RESULTS / f"{args.name}.json"  # a dataset not run now keeps its earlier rows (said in the note)
    kept = {} if args.only is None or not previous.is_file() else json.loads(previous.read_text())["results"]
    results = {**{k: v for k, v in kept.items() if k not in results}, **results}
    rows = []
    for data, recipes in results.items():
        base = recipes["baseline"]["cv_score"]
        for key, r in recipes.items():
            gain = "" if key == "baseline" else f" ({r['cv_score'] - base:+.4f} vs baseline)"
            rows.append((f"{data}: {key}", f"cv {r['metric']} {r['cv_score']:.4f}{gain}, {r['seconds']} s"))
    info["load_avg_at_end"] = os.getloadavg()[0]
    note = (f"{args.folds} folds, {args.epochs} epochs (1 head-only), lite0 {args.size} px, identity+hflip TTA; "
            f"plant: {args.rows} training rows + 600 test images; knee: 1500 train/ rows, val/ (300) as the unlabelled "
            f"pool. Load average {info['load_avg_at_start']:.1f} at the start, {info['load_avg_at_end']:.1f} at the "
            "end: seconds were taken on a shared machine; scores do not depend on load."
            + (f" Only {args.only} was run now; the other dataset's rows are from the previous run." if args.only
               else ""))
    show(rows)
    write_results(args.name, {"machine": info, "args": vars(args), "results": results}, rows, note)
    print(np.round(info["load_avg_at_end"], 2))


if __name__ == "__main__":
    main()
