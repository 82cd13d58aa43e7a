"""Accuracy against a time budget (FFCV style): ``podium auto --budget B`` next to the default ``podium train`` and a
fastai ``fine_tune``-style run, on the same folds and at the same wall time, on potato, plant-pathology-2021-mini and
knee-oa-mini (ordinal) at budgets of 5, 15 and 45 minutes by default.

For each dataset and budget:
- ``auto``: ``podium.auto(DATA, "<B>m")``; its wall time (from the call to the returned folder) over the budget, which
  must stay within [0.90, 1.05], its CV score and what it chose (run or ensemble, folds);
- ``default train``: podium's default recipe (tf_efficientnet_lite0 at 224 px, cosine schedule, 1 head-only epoch),
  on auto's folds (``cv.folds_file``), with the epochs that fill auto's actual wall time by auto's own cost model
  (its probe of lite0 at 224 px on this machine);
- ``fine_tune-style``: fastai's ``Learner.fine_tune(E)`` recipe emulated with podium's options, because fastai is not
  installable here: 1 frozen head-only epoch, then E epochs of one-cycle (warm-up 30% of them, cosine annealing) with
  discriminative learning rates (backbone at 0.1x the head's, fastai's ``slice(lr/100, lr)`` spread), base LR 1e-3
  (fastai's 2e-3 halved after the frozen epoch), no EMA and no label smoothing (fastai's defaults); lite0 at 224 px,
  the same folds, E filling the same wall time.

The table goes to ``bench/results/budget.md`` (and ``budget.json``). ``--images N`` trains on N images of a
class-folder dataset (potato, knee-oa-mini; linked, never copied) for a quick check; ``$PODIUM_DATASETS`` names the
datasets folder when it is not ``bench.common.DATA``.

    flock /tmp/podium-bench.lock env PYTHONPATH=src python -m bench.budget [--budgets 5 15 45]
        [--datasets potato plant-pathology-2021-mini knee-oa-mini] [--images 0] [--no-baselines]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import podium
from bench.common import DATA, machine, write_results
from podium.core.errors import PodiumError
from podium.data.folders.ingest import load_competition
from podium.multirun.auto.ladder import Candidate
from podium.multirun.auto.plan import run_cost
from podium.multirun.auto.probe import TimingCache, machine_key, measure
from podium.multirun.auto.session import workload
from podium.runs.auto import AutoFolder

DATASETS = {"potato": (), "plant-pathology-2021-mini": (), "knee-oa-mini": ("data.task=ordinal",)}
FASTAI = ("finetune.freeze_epochs=1", "train.schedule=onecycle", "train.lr=0.001", "finetune.backbone_lr=0.1",
          "train.ema=false", "train.label_smoothing=0")


def subset(data: Path, images: int, dest: Path) -> Path:
    """A class-folder dataset with about ``images`` images, the same share of each class folder (files linked)."""
    files = sorted(p for p in data.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    step = max(1, len(files) // images)
    for f in files[::step][:images]:
        link = dest / f.relative_to(data)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(f)
    return dest


def run_auto(data: Path, minutes: float, extra: tuple[str, ...], root: Path) -> dict[str, Any]:
    """One ``podium.auto`` call: wall time over the budget, CV score, what it chose, its folds file."""
    t0 = time.monotonic()
    try:
        final = podium.auto(data, minutes * 60, None, [*extra, f"run.root={root}"])
    except PodiumError as e:  # a budget too small for this data on this machine: the refusal is the result
        return {"refused": str(e), "wall_s": time.monotonic() - t0}
    wall = time.monotonic() - t0
    summary = AutoFolder(summary_folder(root, final.path)).summary
    return {"wall_s": wall, "used": wall / (minutes * 60), "cv_score": final.metrics["cv_score"],
            "metric": final.metrics["metric"], "final": summary["final_kind"], "folds": summary["folds"],
            "runs": sum(s["kind"] in ("run", "pseudo") for s in summary["steps"]),
            "folds_csv": str(final.folds_path), "summary": summary}


def summary_folder(root: Path, final: Path) -> Path:
    """The auto folder (under ``root``) whose summary names ``final``."""
    for folder in sorted(root.glob("auto-*")):
        if (folder / "summary.json").is_file() and AutoFolder(folder).summary["final"] == str(final):
            return folder
    raise FileNotFoundError(f"no auto folder under {root} names {final}")


def fitted_epochs(data: Path, overrides: list[str], wall_s: float, folds: int) -> int:
    """Epochs of the config ``overrides`` give that fill ``wall_s`` by auto's cost model (timed as auto's probe)."""
    cfg = podium.make_config(None, overrides)
    comp = load_competition(data, cfg.data, check=False)
    comp = dataclasses.replace(comp, task=comp.task.for_loss(cfg.train.loss, len(comp.classes)))
    candidate = Candidate(cfg.model.name, cfg.model.img_size[0] if cfg.model.img_size else 224)
    cache, key = TimingCache(), machine_key(cfg, candidate, comp.task.outputs(len(comp.classes)))
    timing = cache.get(key)
    if timing is None:
        timing = measure(cfg, comp)
        cache.put(key, timing)
    cost = run_cost(timing, workload(comp, cfg), folds)
    return max(2, int((wall_s - cost.fixed_s) // cost.epoch_s))


def run_fixed(data: Path, extra: tuple[str, ...], recipe: tuple[str, ...], auto: dict[str, Any], root: Path,
              name: str) -> dict[str, Any]:
    """A ``podium train`` of ``recipe`` on auto's folds with the epochs that fill auto's wall time."""
    common = [*extra, f"cv.folds={auto['folds']}", f"cv.folds_file={auto['folds_csv']}", f"run.root={root}",
              f"run.name={name}", "run.report=false"]
    epochs = fitted_epochs(data, [*common, *recipe], auto["wall_s"], auto["folds"])
    if "train.schedule=onecycle" in recipe:  # fine_tune(E): 1 frozen epoch + E one-cycle epochs, 30% warm-up
        recipe = (*recipe, f"train.warmup_epochs={0.3 * (epochs - 1):.2f}")
    t0 = time.monotonic()
    run = podium.train(data, None, [*common, *recipe, f"train.epochs={epochs}"])
    return {"epochs": epochs, "wall_s": time.monotonic() - t0, "cv_score": run.metrics["cv_score"]}


def cell(result: dict[str, Any] | None) -> str:
    """A baseline's table cell: CV (epochs, minutes)."""
    if not result:
        return "-"
    return f"{result['cv_score']:.4f} ({result['epochs']} ep, {result['wall_s'] / 60:.1f} min)"


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of every dataset and budget."""
    lines = ["| data | budget | auto wall / budget | auto CV | auto chose | default train CV | fine_tune-style CV |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        a = r["auto"]
        if "refused" in a:
            lines.append(f"| {r['data']} | {r['minutes']} min | refused | - | {a['refused']} | - | - |")
            continue
        lines.append(f"| {r['data']} | {r['minutes']} min | {a['used']:.2f} | {a['metric']} {a['cv_score']:.4f} | "
                     f"{a['final']} of {a['runs']} runs, {a['folds']} folds | {cell(r.get('default'))} | "
                     f"{cell(r.get('fine_tune'))} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", type=float, nargs="+", default=[5, 15, 45], help="Budgets in minutes.")
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--images", type=int, default=0, help="Train on this many images (class-folder data only).")
    ap.add_argument("--no-baselines", action="store_true", help="Only auto (no default train, no fine_tune-style).")
    ap.add_argument("--name", default="budget")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="podium-budget-") as tmp:
        for name in args.datasets:
            data = Path(os.environ.get("PODIUM_DATASETS", DATA)) / name  # a checkout elsewhere names the folder
            if args.images:
                data = subset(data, args.images, Path(tmp) / f"{name}-{args.images}")
            for minutes in args.budgets:
                root = Path(tmp) / f"runs-{name}-{minutes}"
                row: dict[str, Any] = {"data": name, "minutes": minutes,
                                       "auto": run_auto(data, minutes, DATASETS[name], root)}
                if not args.no_baselines and "refused" not in row["auto"]:
                    row["default"] = run_fixed(data, DATASETS[name], (), row["auto"], root, "default")
                    row["fine_tune"] = run_fixed(data, DATASETS[name], FASTAI, row["auto"], root, "fine_tune")
                row["auto"].pop("summary", None)
                rows.append(row)
                print(table(rows).splitlines()[-1], flush=True)
    md = table(rows)
    note = (f"Images per dataset: {args.images or 'all'}. fastai is not installable here: its fine_tune recipe is "
            f"emulated with podium's options ({' '.join(FASTAI)}, warm-up 30% of the unfrozen epochs). Baselines "
            f"train on auto's folds with the epochs that fill auto's wall time by auto's cost model.\n\n{md}")
    headline = [("datasets", ", ".join(args.datasets)), ("budgets (min)", ", ".join(map(str, args.budgets)))]
    write_results(args.name, {"machine": machine(), "images": args.images, "rows": rows}, headline, note)
    print(md)


if __name__ == "__main__":
    main()
