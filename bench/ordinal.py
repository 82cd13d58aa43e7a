"""Ordinal losses and fitted decisions on real data: which ``train.loss`` should ``data.task=ordinal`` default to?

knee-oa-mini (Kellgren-Lawrence grades 0-4 of knee X-rays, train/ and val/ folders pooled: 1800 images): the same
split for every run (3 stratified folds, seed 42; fold 0's 600 images are the held-out rows), the packaged
``tf_efficientnet_lite0`` ImageNet weights, 96 px, batch 32, 3 epochs (1 head-only), 2 torch threads, through
podium's own ``fit_fold`` (best epoch by QWK, identity+hflip TTA). For each of ``ce``, ``cumulative`` and
``regression`` and each seed: held-out QWK and accuracy of the plain decoding (argmax of the coding's
probabilities: CE argmax, cumulative's grade distribution, rounded regression) and of cut points fitted for QWK on the
continuous score, cross-fitted (fitted on one half of the held-out rows, scored on the other, both ways), plus the
in-sample cut points as podium's metrics.json reports them. Then the default loss with ``data.preprocess=clahe``.

A second part (``--plant``): plant-pathology-2021-mini (multilabel, 3000 images), one fold of 3 trained the same
way; sample F1 of one global threshold vs per-class thresholds (``predict.threshold_mode=per_class`` and
``per_class_f1``), cross-fitted over 5 chunks of the held-out rows (fitted on 4, scored on the 5th).

    flock /tmp/podium-bench.lock env PYTHONPATH=src python -m bench.ordinal [--seeds 0,1,2] [--epochs 3] [--plant]

Results: bench/results/ordinal.{json,md} and bench/results/thresholds_plant.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench.common import DATA, machine, write_results
from podium.config import PodiumConfig, merge
from podium.core.console import Reporter
from podium.data.folders.ingest import load_competition
from podium.data.training.folds import make_folds
from podium.engine.accel import keep_freed_memory, make_accelerator
from podium.engine.fold import fit_fold
from podium.runs.run import Run
from podium.tasks.ordinal import expected_grade, fit_cut_points, grades, qwk
from podium.tasks.thresholds import THRESHOLD_MODES, sample_f1

SIZE, BATCH, THREADS = 96, 32, 2


def base(seed: int, epochs: int, work: Path, *extra: str) -> PodiumConfig:
    """The shared recipe: packaged lite0 weights, SIZE px, 3 folds (fold 0 held out)."""
    return merge(PodiumConfig(), ("model.name=tf_efficientnet_lite0", "model.pretrained=packaged",
                                  f"model.img_size={SIZE}", f"train.batch_size={BATCH}", f"train.threads={THREADS}",
                                  "train.num_workers=0", f"train.epochs={epochs}", f"train.seed={seed}", "cv.folds=3",
                                  "predict.tta=identity,hflip", f"run.root={work}", *extra))


def fold0(data: Path, cfg: PodiumConfig, work: Path, name: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Train fold 0 with ``cfg``; held-out targets, probabilities and wall seconds."""
    comp = load_competition(data, cfg.data, check=False)
    comp = replace(comp, task=comp.task.for_loss(cfg.train.loss, len(comp.classes)))  # as pipeline.plan_run does
    folds = make_folds(comp.targets, comp.task, cfg.cv.folds, cfg.cv.seed)
    torch.set_num_threads(THREADS)
    run_dir = work / name
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = fit_fold(0, comp, folds, cfg, Run(run_dir), make_accelerator(cfg.train), Reporter(run_dir / "log"))
    return comp.targets[result.val_idx], result.probs, time.perf_counter() - t0


def halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two random halves of n rows."""
    perm = np.random.default_rng(seed).permutation(n)
    return perm[: n // 2], perm[n // 2:]


def ordinal_scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Plain (argmax), rounded-score, in-sample and cross-fitted cut point QWK and accuracy."""
    k, score = p.shape[1], expected_grade(p)
    plain = p.argmax(axis=1)
    crossed = np.zeros(len(y), np.int64)
    a, b = halves(len(y))
    for fit, use in ((a, b), (b, a)):
        crossed[use] = grades(score[use], fit_cut_points(y[fit], score[fit], k))
    insample = grades(score, fit_cut_points(y, score, k))
    rounded = grades(score, np.arange(k - 1) + 0.5)
    out = {}
    for name, pred in (("plain", plain), ("rounded", rounded), ("cut_points_crossfit", crossed),
                       ("cut_points_insample", insample)):
        out[f"qwk_{name}"] = qwk(y, pred, k)
        out[f"accuracy_{name}"] = float((pred == y).mean())
    return out


def knee(seeds: list[int], epochs: int, work: Path) -> tuple[dict, list[tuple[str, str]]]:
    """Every ordinal loss and seed, then clahe with the default."""
    data = DATA / "knee-oa-mini"
    runs: dict[str, list[dict]] = {}
    variants = [("ce", ()), ("cumulative", ()), ("regression", ())]
    for seed in seeds:  # seed by seed, so a cut-short bench still compares every loss
        for name, extra in variants:
            cfg = base(seed, epochs, work, "data.task=ordinal", f"train.loss={name}", *extra)
            y, p, wall = fold0(data, cfg, work, f"{name}-{seed}")
            runs.setdefault(name, []).append({"seed": seed, "wall_s": wall, **ordinal_scores(y, p)})
            print(name, seed, {k: round(v, 4) for k, v in runs[name][-1].items()}, flush=True)
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "seed"} for n, rs in runs.items()}
    best = max(("cumulative", "regression", "ce"), key=lambda n: med[n]["qwk_cut_points_crossfit"])
    for seed in seeds:
        cfg = base(seed, epochs, work, "data.task=ordinal", f"train.loss={best}", "data.preprocess=clahe")
        y, p, wall = fold0(data, cfg, work, f"clahe-{best}-{seed}")
        runs.setdefault(f"{best}+clahe", []).append({"seed": seed, "wall_s": wall, **ordinal_scores(y, p)})
        print("clahe", seed, {k: round(v, 4) for k, v in runs[f"{best}+clahe"][-1].items()}, flush=True)
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "seed"} for n, rs in runs.items()}
    rows = [(f"{n}: QWK plain / cut points cross-fitted / in-sample (median of {len(seeds)} seeds)",
             f"{m['qwk_plain']:.4f} / {m['qwk_cut_points_crossfit']:.4f} / {m['qwk_cut_points_insample']:.4f}")
            for n, m in med.items()]
    rows += [(f"{n}: accuracy plain / cut points cross-fitted", f"{m['accuracy_plain']:.4f} / "
              f"{m['accuracy_cut_points_crossfit']:.4f}") for n, m in med.items()]
    gain = med[best]["qwk_cut_points_crossfit"] - med["ce"]["qwk_plain"]
    rows.append((f"best recipe ({best} + cut points) minus CE + argmax, median QWK", f"{gain:+.4f}"))
    rows.append(("median wall s per run (fit_fold, CPU, shared machine)",
                 f"{statistics.median(r['wall_s'] for rs in runs.values() for r in rs):.0f}"))
    return {"best": best, "runs": runs, "median": med, "gain_vs_ce_argmax": gain}, rows


def plant(seeds: list[int], epochs: int, work: Path) -> tuple[dict, list[tuple[str, str]]]:
    """Global vs per-class thresholds on held-out multilabel probabilities, cross-fitted over 5 chunks."""
    data = DATA / "plant-pathology-2021-mini"
    runs = []
    for seed in seeds:
        y, p, wall = fold0(data, base(seed, epochs, work), work, f"plant-{seed}")
        chunks = np.array_split(np.random.default_rng(seed).permutation(len(y)), 5)
        out: dict[str, float] = {"seed": seed, "wall_s": wall, "sample_f1_at_0.5": sample_f1(y, p, 0.5)}
        for mode in THRESHOLD_MODES.names():
            pred_f1 = []
            for i, use in enumerate(chunks):
                fit = np.concatenate([c for j, c in enumerate(chunks) if j != i])
                t = THRESHOLD_MODES.get(mode)(y[fit], p[fit])
                pred_f1.append(sample_f1(y[use], p[use], t) * len(use))
            out[f"sample_f1_{mode}_crossfit"] = float(sum(pred_f1) / len(y))
            out[f"sample_f1_{mode}_insample"] = sample_f1(y, p, THRESHOLD_MODES.get(mode)(y, p))
        runs.append(out)
        print("plant", {k: round(v, 4) for k, v in out.items()}, flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "seed"}
    rows = [(f"sample F1 {k.removeprefix('sample_f1_')} (median of {len(seeds)} seeds)", f"{v:.4f}")
            for k, v in med.items() if k.startswith("sample_f1")]
    return {"runs": runs, "median": med}, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--plant", action="store_true", help="the multilabel threshold part instead of the ordinal one")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    keep_freed_memory()
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        if args.plant:
            result, rows = plant(seeds, args.epochs, Path(tmp))
            name, note = "thresholds_plant", (f"plant-pathology-2021-mini, fold 0 of 3 held out, lite0 {SIZE} px, "
                                              f"{args.epochs} epochs; thresholds cross-fitted over 5 chunks.")
        else:
            result, rows = knee(seeds, args.epochs, Path(tmp))
            name, note = "ordinal", (f"knee-oa-mini, fold 0 of 3 held out (600 images), lite0 {SIZE} px, "
                                     f"{args.epochs} epochs, seeds {args.seeds}; cut points cross-fitted on halves.")
    write_results(name, {"machine": machine(), "epochs": args.epochs, "seeds": seeds, **result}, rows, note)
    for k, v in rows:
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
