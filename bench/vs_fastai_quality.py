"""podium's default fine-tuning recipe vs. fastai's ``vision_learner(...).fine_tune(2)`` on the same split and weights.

Both sides: the same stratified 80/20 split (seed 42; multilabel-stratified for multilabel data), the packaged
``tf_efficientnet_lite0`` ImageNet weights (podium[offline]), 128 px, batch 32, 2 torch threads, no loader workers,
and 3 passes over the training images (podium: train.epochs=3 with its default head-only first epoch; fastai: 1
frozen + 2 unfrozen epochs). They run one after the other in this process, per training seed, both with glibc malloc
keeping freed memory (podium's train.cpu_keep_memory is process-wide, so it is set once up front for both sides).
Printed per seed and as the median: validation scores without and with TTA (podium: identity+hflip; fastai:
learn.tta()), and wall times (podium: fit_fold, i.e. training, per-epoch validation and its final TTA pass; fastai:
fine_tune, i.e. training and per-epoch validation). Multilabel scores are mean column-wise ROC AUC and sample F1,
plus the share of rows with no label (fastai decides at 0.5; podium at 0.5 with its never-empty rule, the threshold
not being fitted on the validation rows). Results go to bench/results/vs_fastai_quality_<dataset>.{json,md}.

    PYTHONPATH=src python bench/vs_fastai_quality.py [--datasets potato,plant-pathology-2021-mini] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from podium.config import PodiumConfig, merge
from podium.core.console import Reporter
from podium.core.io import write_json, write_text
from podium.data.folders.ingest import Competition, load_competition
from podium.data.training.folds import make_folds
from podium.engine.accel import keep_freed_memory, make_accelerator
from podium.engine.fold import fit_fold
from podium.models.factory import create_model
from podium.runs.run import Run
from podium.tasks.metrics import METRICS

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
ARCH, SIZE, BATCH, THREADS, PASSES = "tf_efficientnet_lite0", 128, 32, 2, 3
MEAN = STD = (0.5, 0.5, 0.5)  # tf_efficientnet_lite0's pretrained_cfg (podium reads it from timm; fastai gets it here)


def split(comp: Competition) -> np.ndarray:
    """Fold 0 of a 5-fold stratified split (seed 42) is the 20% validation set; the rest is fold 1."""
    folds = make_folds(comp.targets, comp.task, 5, 42)
    return np.where(folds == 0, 0, 1)


def scores(comp: Competition, y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Accuracy for single-label data; mean AUC, sample F1 and the share of empty rows at 0.5 for multilabel."""
    if not comp.task.multilabel:
        return {"accuracy": float((p.argmax(1) == y).mean())}
    return {"mean_auc": METRICS.get("mean_auc")(y, p), "sample_f1": METRICS.get("sample_f1")(y, p, 0.5)}


def run_podium(comp: Competition, folds: np.ndarray, seed: int, work: Path, extra: tuple[str, ...] = ()) -> dict:
    cfg = merge(PodiumConfig(), (f"model.name={ARCH}", "model.pretrained=packaged", f"model.img_size={SIZE}",
                                 f"train.batch_size={BATCH}", f"train.threads={THREADS}", "train.num_workers=0",
                                 f"train.epochs={PASSES}", f"train.seed={seed}", "cv.folds=2",
                                 "predict.tta=identity,hflip", f"run.root={work}", *extra))
    torch.set_num_threads(THREADS)
    accelerator = make_accelerator(cfg.train)
    run_dir = work / f"podium-seed{seed}"
    t0 = time.perf_counter()
    result = fit_fold(0, comp, folds, cfg, Run(run_dir), accelerator, Reporter(run_dir / "train.log"))
    wall = time.perf_counter() - t0
    y = comp.targets[result.val_idx]
    # fit_fold keeps the best epoch's weights for its TTA pass; the no-TTA score is the last epoch's (as fastai's).
    log = pd.read_csv(run_dir / "fold0" / "log.csv")
    tta = scores(comp, y, result.probs)
    out = {"wall_s": wall, "best_epoch": int(result.summary["best_epoch"]), "tta": tta,
           "no_tta": {k: float(log[k].iloc[-1]) for k in tta}}
    if comp.task.multilabel:  # podium's decode_multilabel never leaves a row empty
        out["tta"]["empty_rows"] = out["no_tta"]["empty_rows"] = 0.0
    return out


def run_fastai(comp: Competition, folds: np.ndarray, seed: int) -> dict:
    from fastai.vision.all import (
        CategoryBlock,
        DataBlock,
        ImageBlock,
        IndexSplitter,
        MultiCategoryBlock,
        Normalize,
        Resize,
        aug_transforms,
        set_seed,
        vision_learner,
    )

    torch.set_num_threads(THREADS)
    set_seed(seed)
    paths = comp.train["path"].tolist()
    labels = comp.label_strings()
    items = list(range(len(paths)))
    val_idx = np.flatnonzero(folds == 0)
    multi = comp.task.multilabel
    block = MultiCategoryBlock(vocab=list(comp.classes)) if multi else CategoryBlock(vocab=list(comp.classes))
    dblock = DataBlock(
        blocks=(ImageBlock, block), get_x=lambda i: paths[i],
        get_y=(lambda i: labels[i].split(" ")) if multi else (lambda i: labels[i]),
        splitter=IndexSplitter(val_idx), item_tfms=Resize(SIZE),
        batch_tfms=[*aug_transforms(), Normalize.from_stats(MEAN, STD)])
    dls = dblock.dataloaders(items, bs=BATCH, num_workers=0)
    learn = vision_learner(dls, ARCH, pretrained=False, normalize=False)
    # The same packaged ImageNet weights as podium's, through podium's checked mapping (the body has no classifier).
    base = create_model(merge(PodiumConfig(), (f"model.name={ARCH}", "model.pretrained=packaged")).model, 1000)
    body = {k: v for k, v in base.state_dict().items() if not k.startswith("classifier.")}
    learn.model[0].model.load_state_dict(body)
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        learn.fine_tune(PASSES - 1)
    wall = time.perf_counter() - t0
    with learn.no_bar():
        p, _ = learn.get_preds(dl=dls.valid)
        p_tta, _ = learn.tta(dl=dls.valid)
    y = comp.targets[val_idx]
    out = {"wall_s": wall, "no_tta": scores(comp, y, p.numpy()), "tta": scores(comp, y, p_tta.numpy())}
    if multi:
        out["no_tta"]["empty_rows"] = float(((p.numpy() >= 0.5).sum(1) == 0).mean())
        out["tta"]["empty_rows"] = float(((p_tta.numpy() >= 0.5).sum(1) == 0).mean())
    return out


def markdown(name: str, rows: list[dict], med: dict) -> str:
    keys = list(rows[0]["podium"]["no_tta"])
    head = ["seed", "side", *[f"{k}" for k in keys], *[f"{k} TTA" for k in keys], "wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in [*rows, {"seed": "median", **med}]:
        for side in ("podium", "fastai"):
            s = r[side]
            lines.append(f"| {r['seed']} | {side} | " + " | ".join(f"{s['no_tta'][k]:.4f}" for k in keys) + " | "
                         + " | ".join(f"{s['tta'][k]:.4f}" for k in keys) + f" | {s['wall_s']:.0f} |")
    return f"## {name}\n\n" + "\n".join(lines) + "\n"


def median(rows: list[dict]) -> dict:
    out: dict = {}
    for side in ("podium", "fastai"):
        out[side] = {"wall_s": statistics.median(r[side]["wall_s"] for r in rows)}
        for kind in ("no_tta", "tta"):
            out[side][kind] = {k: statistics.median(r[side][kind][k] for r in rows) for k in rows[0][side][kind]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="potato,plant-pathology-2021-mini")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--podium-only", action="store_true", help="Skip fastai (for tuning podium's recipe).")
    ap.add_argument("--override", action="append", default=[], help="Extra podium override (tuning only).")
    args = ap.parse_args()
    keep_freed_memory()  # the same allocator for both sides, whichever runs first
    out = Path(args.out)
    for name in args.datasets.split(","):
        comp = load_competition(DATA / name, PodiumConfig().data, check=False)
        folds = split(comp)
        rows = []
        for seed in (int(s) for s in args.seeds.split(",")):
            row: dict = {"seed": seed}
            if not args.podium_only:
                row["fastai"] = run_fastai(comp, folds, seed)
                print(name, "fastai", json.dumps(row["fastai"]), flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                row["podium"] = run_podium(comp, folds, seed, Path(tmp), tuple(args.override))
            if args.podium_only:
                print(name, args.override, json.dumps(row), flush=True)
                continue
            rows.append(row)
            print(name, json.dumps(row), flush=True)
            # Results are rewritten after every seed, so a long run that is stopped keeps what it measured.
            write_results(out, name, folds, rows)


def write_results(out: Path, name: str, folds: np.ndarray, rows: list[dict]) -> None:
    if not rows:
        return
    med = median(rows)
    ratio = med["podium"]["wall_s"] / med["fastai"]["wall_s"]
    print(f"{name} median over {len(rows)} seeds: {json.dumps(med)}  wall ratio podium/fastai {ratio:.2f}", flush=True)
    result = {"dataset": name, "arch": ARCH, "size": SIZE, "batch": BATCH, "threads": THREADS, "passes": PASSES,
              "val_rows": int((folds == 0).sum()), "rows": rows, "median": med, "wall_ratio": ratio}
    write_json(out / f"vs_fastai_quality_{name}.json", result)
    write_text(out / f"vs_fastai_quality_{name}.md", markdown(name, rows, med) + f"\nwall ratio podium/fastai "
               f"(median): {ratio:.2f}\n")


if __name__ == "__main__":
    main()
