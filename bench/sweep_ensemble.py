"""Many runs, one submission, on Plant Pathology 2021 (mini): a sweep of the three packaged EfficientNet-Lite
backbones x two resize methods at 128 px, then ``podium ensemble --top 3 --blend weights``.

To stay near half an hour on a 2-core CPU, the sweep trains on a multilabel-stratified subset of the training rows
(``--train-rows``, default 1500 of 3000: one fold of a round(3000 / rows)-fold iterative split, seed 0) and predicts
a subset of the test rows (``--test-rows``, default 100, the sample's first rows), in a competition folder under
``--work`` that links to the shared images (nothing is copied); a second call continues the sweep where it stopped.
Each run: 3 folds x 3 epochs (the first head-only), batch 32, TTA identity+hflip.
Reported: every run's OOF mean AUC and sample F1, the blend's honest OOF score (weights cross-fitted fold-wise), its
in-sample score, and the gain of the honest score over the best single run; plus the equal-weight mean of the same
three members for reference.

``--part report`` trains nothing: it ensembles and reports the finished runs of an earlier, interrupted call.

``--part throughput`` measures the parallel throughput of item 6: the same two runs (lite0, 2 folds x 2 epochs on
``--throughput-rows`` images, default 600) as ``podium sweep --jobs 1`` (in sequence, in this process, torch's
default threads) and ``--jobs 2`` (two spawned processes, one thread each); throughput ratio = sequential wall /
parallel wall. Each spawned process pays its own start-up (imports, model creation, about 10 s here), so runs much
shorter than a minute measure that start-up rather than the sharing of the cores.

    flock /tmp/podium-bench.lock env PYTHONPATH=src python -m bench.sweep_ensemble [--part sweep|throughput|all]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

import podium
from bench.common import DATA, machine, show, write_results

DATASET = DATA / "plant-pathology-2021-mini"
BACKBONES = "tf_efficientnet_lite0,tf_efficientnet_lite1,tf_efficientnet_lite2"


def subset(dest: Path, train_rows: int, test_rows: int) -> Path:
    """A competition folder with a stratified subset of the training rows and the first test rows (images linked)."""
    train = pd.read_csv(DATASET / "train.csv")
    classes = sorted({c for labels in train["labels"] for c in labels.split()})
    y = np.array([[c in labels.split() for c in classes] for labels in train["labels"]], dtype=int)
    if train_rows < len(train):
        k = max(2, round(len(train) / train_rows))
        # fold 0 of k as the kept rows, or its complement when more than half of them are wanted
        rest, keep = next(MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=0).split(train, y))
        train = train.iloc[np.sort(keep if train_rows <= len(train) // 2 else rest)]
    dest.mkdir(parents=True, exist_ok=True)
    train.to_csv(dest / "train.csv", index=False)
    pd.read_csv(DATASET / "sample_submission.csv").head(test_rows).to_csv(dest / "sample_submission.csv", index=False)
    for name in ("train_images", "test_images"):
        if not (dest / name).exists():
            (dest / name).symlink_to(DATASET / name)
    return dest


def sweep_and_ensemble(work: Path, args: argparse.Namespace) -> dict:
    data = subset(work / "pp2021-subset", args.train_rows, args.test_rows)
    common = ["model.img_size=128", f"train.epochs={args.epochs}", "cv.folds=3", "train.batch_size=32",
              f"train.threads={args.threads}", "train.num_workers=0", "predict.tta=identity,hflip",
              f"run.root={work / 'runs'}"]
    t0 = time.time()
    if args.part == "report":  # the finished runs of an earlier (possibly interrupted) call, nothing trained
        table = pd.read_csv(work / "runs" / "sweeps" / "pp2021" / "sweep.csv")
    else:
        table = podium.sweep(data, [f"model.name={BACKBONES}", "model.resize=squash,crop"], overrides=common,
                             name="pp2021")
    sweep_s = time.time() - t0
    table = table[table["status"] == "done"]
    runs = []
    for _, r in table.iterrows():
        m = podium.load(work / "runs" / r["run"]).metrics
        runs.append({"model": r["model.name"], "resize": r["model.resize"], "run": r["run"],
                     "mean_auc": m["overall"]["mean_auc"], "sample_f1": m["overall"]["sample_f1"],
                     "mean_auc_no_tta": r["cv_score_no_tta"], "epoch_s": r["epoch_s"],
                     "peak_mem_mb": r["peak_mem_mb"], "params": int(r["params"]), "wall_s": r["wall_s"],
                     "status": r["status"]})
    t1 = time.time()
    top = min(3, len(runs))
    ens = podium.ensemble(top=top, data=data, root=work / "runs", blend="weights", name=f"top{top}-weights")
    ensemble_s = time.time() - t1
    mean = podium.ensemble(top=top, data=data, root=work / "runs", blend="mean", name=f"top{top}-mean").metrics
    m = ens.metrics
    best = max(runs, key=lambda r: r["mean_auc"])
    return {"runs_done": f"{len(runs)} of 6", "top": top,
            "train_rows": int(len(pd.read_csv(data / "train.csv"))), "test_rows": args.test_rows,
            "epochs": args.epochs, "sweep_s": sweep_s, "ensemble_s": ensemble_s, "runs": runs,
            "members": [{"name": r["name"], "weight": r["weight"], "mean_auc": r["overall"]["mean_auc"],
                         "sample_f1": r["overall"]["sample_f1"]} for r in m["members"]],
            "blend": {"honest": m["overall"], "in_sample": m["overall_in_sample"],
                      "fold_weights": m["fold_weights"], "threshold": m["threshold"]},
            "mean_blend": {"honest": mean["overall"]},
            "best_single": {"run": best["run"], "mean_auc": best["mean_auc"], "sample_f1": best["sample_f1"]},
            "gain_mean_auc": m["overall"]["mean_auc"] - best["mean_auc"],
            "submission_rows": int(len(pd.read_csv(ens.submission_path)))}


def throughput(work: Path, rows: int) -> dict:
    data = subset(work / f"pp2021-{rows}", rows, 20)
    common = ["model.name=tf_efficientnet_lite0", "model.img_size=128", "train.epochs=2", "finetune.freeze_epochs=0",
              "cv.folds=2", "train.num_workers=0", "predict.tta=identity", f"run.root={work / 'runs'}"]
    walls = {}
    for jobs in (1, 2):
        t0 = time.time()
        table = podium.sweep(data, ["train.seed=1,2"], overrides=common, name=f"jobs{jobs}", jobs=jobs)
        walls[jobs] = time.time() - t0
        assert (table["status"] == "done").all(), table
    return {"rows": rows, "sequential_s": walls[1], "parallel_s": walls[2], "ratio": walls[1] / walls[2]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("sweep", "throughput", "all", "report"), default="all",
                    help="report: ensemble and report the finished runs of an earlier call, training nothing")
    ap.add_argument("--train-rows", type=int, default=1500)
    ap.add_argument("--test-rows", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--throughput-rows", type=int, default=600, help="training images of each throughput run")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "podium-bench-sweep_ensemble",
                    help="data subset and runs; kept, so that a second call continues the sweep where it stopped")
    args = ap.parse_args()
    if not DATASET.is_dir():
        raise SystemExit(f"{DATASET} is not available")
    result: dict = {"machine": machine()}
    rows: list[tuple[str, str]] = []
    tmp = args.work / f"rows{args.train_rows}-test{args.test_rows}-epochs{args.epochs}"
    if args.part in ("sweep", "all", "report"):
        r = result["sweep"] = sweep_and_ensemble(tmp / "sweep", args)
        for run in r["runs"]:
            rows.append((f"{run['model']} {run['resize']}: OOF mean AUC / sample F1",
                         f"{run['mean_auc']:.4f} / {run['sample_f1']:.4f} ({run['epoch_s']:.1f} s/epoch, "
                         f"{run['peak_mem_mb']:.0f} MiB, {run['params'] / 1e6:.2f}M params)"))
        weights = ", ".join(f"{m['name'].split('-', 1)[1].rsplit('-', 2)[0]} {m['weight']:.2f}" for m in r["members"])
        rows += [("runs finished", r["runs_done"]), (f"top-{r['top']} weights", weights),
                 ("blend honest (cross-fitted) mean AUC / sample F1",
                  f"{r['blend']['honest']['mean_auc']:.4f} / {r['blend']['honest']['sample_f1']:.4f}"),
                 ("blend in-sample mean AUC / sample F1",
                  f"{r['blend']['in_sample']['mean_auc']:.4f} / {r['blend']['in_sample']['sample_f1']:.4f}"),
                 (f"equal-weight mean of the top {r['top']}, mean AUC", f"{r['mean_blend']['honest']['mean_auc']:.4f}"),
                 ("best single run mean AUC", f"{r['best_single']['mean_auc']:.4f} ({r['best_single']['run']})"),
                 ("gain of the honest blend over the best run", f"{r['gain_mean_auc']:+.4f}"),
                 ("sweep wall / ensemble wall", f"{r['sweep_s']:.0f} s / {r['ensemble_s']:.0f} s")]
    if args.part in ("throughput", "all"):
        work = tmp / f"throughput-{time.strftime('%Y%m%d-%H%M%S')}"  # always fresh runs
        t = result["throughput"] = throughput(work, args.throughput_rows)
        rows += [(f"two runs in sequence (--jobs 1), {t['rows']} images, 2 folds x 2 epochs each",
                  f"{t['sequential_s']:.0f} s"),
                 ("the same two in parallel (--jobs 2, 1 thread each)", f"{t['parallel_s']:.0f} s"),
                 ("throughput ratio parallel / sequential", f"{t['ratio']:.2f}x")]
    show(rows)
    name = "sweep_ensemble" if args.part in ("all", "report") else f"sweep_ensemble_{args.part}"
    result["load_avg_at_end"] = os.getloadavg()[0]
    write_results(name, result, rows, note=__doc__.split("\n\n")[1].replace("\n", " ") + f" Load average "
                  f"{result['machine']['load_avg_at_start']:.1f} at the start, {result['load_avg_at_end']:.1f} at the "
                  "end (2 cores): seconds are only comparable at a load near 2; quality numbers are unaffected.")


if __name__ == "__main__":
    main()
