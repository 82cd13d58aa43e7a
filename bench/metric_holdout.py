"""cv.metric and holdout runs (issue 21), measured on the shared minis:

1. plant-pathology-2021-mini, a holdout run (fold 0 of 5) with ``cv.metric=f1_micro``; its per-epoch log says
   whether ``f1_samples`` would pick the same best epoch (then the f1_samples run is the same weights), and the
   multilabel threshold is fitted for each metric on the same OOF rows and scored both ways (in-sample on the 20%
   holdout, like metrics.json's decision scores).
2. potato, a 3-run holdout sweep (fold 0 of 5; three training seeds) and the ensemble of its runs (fitted weights,
   cross-fitted on 5 chunks of the holdout for its honest score): each run's accuracy, the blend's honest and
   in-sample accuracy, and what the sweep and the ensemble cost.

    python -m bench.metric_holdout [--epochs 3] [--sweep-epochs 2] [--skip-plant | --skip-potato]

(results: bench/results/metric_holdout[_plant|_potato].{json,md}, by the parts run)
"""

from __future__ import annotations

import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

import podium
from bench.common import DATA, base_parser, machine, show, write_results
from podium.tasks.metrics import METRICS


def base(args: object, work: Path, epochs: int) -> list[str]:
    return ["model.name=tf_efficientnet_lite0", "model.pretrained=packaged", f"model.img_size={args.size}",
            f"train.batch_size={args.batch}", f"train.threads={args.threads}", "train.num_workers=0",
            f"train.epochs={epochs}",
            "predict.tta=identity,hflip", "cv.folds=5", "cv.train_folds=0", "run.report=false", f"run.root={work}"]


def metric_runs(args: object, work: Path) -> dict[str, dict]:
    """cv.metric=f1_micro against f1_samples on one holdout run: ``cv.metric`` changes training only through the
    best epoch, so the run is trained once (cv.metric=f1_micro, whose log also holds sample F1 at 0.5 per epoch);
    when both metrics pick the same epoch the f1_samples run would be the same weights, and each metric's threshold
    is fitted on the same OOF rows (``fit_decisions`` of the task scored by that metric). Each row is scored both
    ways at its own threshold (in-sample on the 20% holdout, like metrics.json's decision scores)."""
    import pandas as pd

    from podium.tasks.metrics import fit_decisions, resolve_metric
    from podium.tasks.task import get_task

    data, out = DATA / "plant-pathology-2021-mini", {}
    t0 = time.perf_counter()
    no_test = ["data.sample_submission=absent.csv", "data.test_csv=absent.csv", "data.test_dir=absent"]  # OOF only
    run = podium.train(data, overrides=[*base(args, work, args.epochs), *no_test, "cv.metric=f1_micro",
                                        "run.name=pp-metric"])
    wall = time.perf_counter() - t0
    log = pd.read_csv(run.path / "fold0" / "log.csv")
    best = {"f1_micro": int(log.loc[log["f1_micro"].idxmax(), "epoch"]),
            "f1_samples": int(log.loc[log["sample_f1"].idxmax(), "epoch"])}
    oof, classes = run.oof, list(run.info["classes"])
    y = np.array([[int(c in str(s).split()) for c in classes] for s in oof["label"]])
    p = oof[classes].to_numpy()
    for metric in ("f1_micro", "f1_samples"):
        t1 = time.perf_counter()
        t = fit_decisions(resolve_metric(get_task("multilabel"), metric), y, p, run.config.predict)["threshold"]
        out[f"cv.metric={metric}"] = {
            "threshold": t, "f1_micro": round(METRICS.get("f1_micro")(y, p, t), 4),
            "f1_samples": round(METRICS.get("f1_samples")(y, p, t), 4),
            "mean_auc": round(METRICS.get("mean_auc")(y, p), 4),
            "best_epoch": best[metric], "fit_s": round(time.perf_counter() - t1, 2)}
        print("plant", metric, out[f"cv.metric={metric}"], flush=True)
    out["run"] = {"wall_s": round(wall, 1), "same best epoch": best["f1_micro"] == best["f1_samples"],
                  "oof_rows": len(oof), "threshold at 0.5: f1_micro": round(METRICS.get("f1_micro")(y, p, 0.5), 4),
                  "f1_samples": round(METRICS.get("f1_samples")(y, p, 0.5), 4)}
    return out


def holdout_sweep(args: object, work: Path) -> dict[str, dict]:
    """A 3-run holdout sweep on potato and the ensemble of its runs."""
    t0 = time.perf_counter()
    table = podium.sweep(DATA / "potato", ["train.seed=1,2,3"], overrides=base(args, work, args.sweep_epochs),
                         name="potato-hold")
    sweep_s = time.perf_counter() - t0
    out = {f"run seed {r['train.seed']}": {"accuracy": round(float(r["cv_score"]), 4), "status": r["status"]}
           for _, r in table.iterrows()}
    runs = sorted(p for p in work.glob("potato-hold-*") if (p / "metrics.json").is_file())
    t0 = time.perf_counter()
    ens = podium.ensemble(*runs, blend="weights", name="potato-hold-ens")
    m = ens.metrics
    out["ensemble (weights)"] = {"honest accuracy": round(m["cv_score"], 4),
                                 "in-sample accuracy": round(m["cv_score_in_sample"], 4),
                                 "gain over best run": round(m["gain_over_best"], 4),
                                 "weights": [round(r["weight"], 3) for r in m["members"]], "rows": m["oof_rows"],
                                 "ensemble_s": round(time.perf_counter() - t0, 1)}
    out["sweep"] = {"wall_s": round(sweep_s, 1), "runs": len(runs)}
    print("potato", out, flush=True)
    return out


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--sweep-epochs", type=int, default=2)
    ap.add_argument("--skip-plant", action="store_true")
    ap.add_argument("--skip-potato", action="store_true")
    args = ap.parse_args()
    results, rows = {"machine": machine()}, []
    with TemporaryDirectory() as tmp:
        if not args.skip_plant:
            results["plant"] = metric_runs(args, Path(tmp) / "plant")
            rows += [(f"plant-pathology-2021-mini: {k}", ", ".join(f"{a} {b}" for a, b in v.items()))
                     for k, v in results["plant"].items()]
        if not args.skip_potato:
            results["potato"] = holdout_sweep(args, Path(tmp) / "potato")
            rows += [(f"potato: {k}", ", ".join(f"{a} {b}" for a, b in v.items()))
                     for k, v in results["potato"].items()]
    show(rows)
    part = "_potato" if args.skip_plant else "_plant" if args.skip_potato else ""
    write_results(f"metric_holdout{part}", {**results, "epochs": args.epochs, "sweep_epochs": args.sweep_epochs},
                  rows, note=f"Holdout runs: fold 0 of 5 (20% validation), tf_efficientnet_lite0 packaged weights, "
                       f"{args.size} px, batch {args.batch}, identity+hflip TTA; plant {args.epochs} epochs, potato "
                       f"sweep {args.sweep_epochs} epochs. Taken on a shared 2-core machine under load: seconds are "
                       "not comparable to other benches; scores are deterministic.")


if __name__ == "__main__":
    main()
