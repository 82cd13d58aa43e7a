"""What each competition recipe costs and gains at a short budget: the default recipe against +MixUp/CutMix, focal
loss, pad and crop resizing (squash is the default), and 8-view (d4) TTA, at equal epochs, on potato and
plant-pathology-2021-mini.

Every variant trains fold 0 of the same 5-fold split (20% validation) with the packaged tf_efficientnet_lite0 at
128 px; the d4 row re-predicts the default run's best weights with the 8 views instead of identity + hflip (TTA
changes prediction only). Printed and written to bench/results/recipes.{json,md}: the validation score with TTA
(accuracy for potato; mean column-wise AUC and sample F1 at 0.5 for plant pathology) and seconds per epoch.

    python -m bench.recipes [--epochs 3] [--datasets potato plant-pathology-2021-mini] [--variants LABEL ...]

With ``--variants`` only those rows run (and the d4 row only with the default), written to
bench/results/recipes_subset.{json,md} so the full table stays.
"""

from __future__ import annotations

import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import pandas as pd
import torch

from bench.common import DATA, base_parser, fold0, machine, show, write_results
from podium.core.console import Reporter
from podium.engine.accel import make_accelerator
from podium.engine.fold import fit_fold
from podium.inference.checkpoints import predict_checkpoints
from podium.runs.run import Run
from podium.tasks.metrics import score

VARIANTS = {
    "default (squash, identity+hflip TTA)": (),
    "+ mixup/cutmix": ("aug.batch=mixup,cutmix",),
    "+ focal loss": ("train.loss=focal",),
    "pad resize": ("model.resize=pad",),
    "crop resize": ("model.resize=crop",),
    # aug.presize=1: training resizes with the method first, then random_resized_crop within (fastai's presizing)
    "crop resize + presize": ("model.resize=crop", "aug.presize=1"),
    "pad resize + presize": ("model.resize=pad", "aug.presize=1"),
}


def headline(task_metrics: dict[str, float]) -> dict[str, float]:
    """The numbers a table shows: accuracy for single-label data, mean AUC and sample F1 for multilabel."""
    keys = [k for k in ("accuracy", "mean_auc", "sample_f1") if k in task_metrics]
    return {k: round(float(task_metrics[k]), 4) for k in keys}


def bench_dataset(name: str, epochs: int, threads: int, work: Path, variants: list[str] | None = None
                  ) -> dict[str, dict]:
    base = ["model.name=tf_efficientnet_lite0", "model.pretrained=packaged", "model.img_size=128",
            "train.batch_size=32", f"train.threads={threads}", "train.num_workers=0", f"train.epochs={epochs}",
            "predict.tta=identity,hflip"]
    out: dict[str, dict] = {}
    default_run = None
    for label, extra in VARIANTS.items():
        if variants and label not in variants:
            continue
        cfg, comp, train_idx, val_idx = fold0(DATA / name, [*base, *extra, f"run.root={work}"])
        folds = np.ones(len(comp.train), dtype=np.int64)
        folds[val_idx] = 0
        torch.set_num_threads(threads)
        accelerator = make_accelerator(cfg.train)
        run = Run(work / f"{name}-{len(out)}")
        t0 = time.perf_counter()
        result = fit_fold(0, comp, folds, cfg, run, accelerator, Reporter(run.path / "train.log"))
        wall = time.perf_counter() - t0
        log = pd.read_csv(run.path / "fold0" / "log.csv")
        y = comp.targets[result.val_idx]
        out[label] = {**headline(score(comp.task, y, result.probs)), "s_per_epoch": round(float(log["train_s"].mean()),
                                                                                         1), "wall_s": round(wall, 1)}
        print(name, label, out[label], flush=True)
        if default_run is None and not extra:
            default_run = (run, comp, result.val_idx, accelerator)
    if default_run is None:
        return out
    run, comp, val_idx, accelerator = default_run
    t0 = time.perf_counter()
    pred = predict_checkpoints(run.checkpoints(), comp.train["id"].to_numpy()[val_idx].tolist(),
                               comp.train["path"].to_numpy()[val_idx].tolist(), accelerator, views=("d4",))
    out["default + d4 TTA (8 views)"] = {**headline(score(comp.task, comp.targets[val_idx], pred.probs)),
                                         "predict_s": round(time.perf_counter() - t0, 1)}
    print(name, "d4", out["default + d4 TTA (8 views)"], flush=True)
    return out


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--datasets", nargs="+", default=["potato", "plant-pathology-2021-mini"])
    ap.add_argument("--variants", nargs="+", default=None, choices=list(VARIANTS))
    args = ap.parse_args()
    results, rows = {}, []
    with TemporaryDirectory() as tmp:
        for name in args.datasets:
            results[name] = bench_dataset(name, args.epochs, args.threads, Path(tmp), args.variants)
            for label, r in results[name].items():
                shown = ", ".join(f"{k} {v}" for k, v in r.items())
                rows.append((f"{name}: {label}", shown))
    show(rows)
    write_results("recipes_subset" if args.variants else "recipes",
                  {"machine": machine(), "epochs": args.epochs, "results": results}, rows,
                  note=f"Fold 0 of 5 (20% validation), tf_efficientnet_lite0 packaged weights, 128 px, batch 32, "
                       f"{args.epochs} epochs, seed 42; scores with TTA.")


if __name__ == "__main__":
    main()
