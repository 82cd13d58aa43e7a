"""Inference forecast against a measured ``predict --data``: does ``podium predict RUN --estimate N`` hold on a hidden
test set several times larger than the test set whose prediction the throughput was measured on?

A Kaggle-like competition folder is made from potato (``bench.kaggle.make_competition``: train.csv, symlinked images,
``--test`` test images). A small run is trained on it (``--size`` px, ``--epochs``, 2 folds, TTA identity + hflip);
training measures its test prediction (per fold model: load, read, predict) and the decode of fresh images. A hidden
test set of ``--hidden`` images (``--hidden`` / ``--test`` times larger) is written to a temporary folder, half
copies and half horizontal flips of potato images, so none is in the image cache. The forecast for that many images
(``podium.estimate_inference``) is then compared with the wall time of ``podium.predict(RUN, data=HIDDEN)`` in this
process (torch already imported) and, with ``--cli``, of the command ``podium predict RUN --data HIDDEN`` (interpreter
start included). Nothing is written into the repository but bench/results/forecast.{json,md}.

    python -m bench.forecast [--train 200] [--test 80] [--hidden 640] [--size 64] [--epochs 1] [--batch 16] [--cli]
    (PODIUM_DATASETS=/path/to/datasets when ../shared/datasets is not beside the checkout)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

import bench.common
from bench.common import machine, potato, show, write_results
from bench.kaggle import make_competition


def hidden_set(root: Path, n: int) -> Path:
    """``n`` fresh test images (copies and horizontal flips of potato's, alternately) and their sample submission."""
    files = sorted(p for p in potato().rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    pick = np.random.default_rng(1).permutation(len(files))
    (root / "test_images").mkdir(parents=True)
    ids = []
    for k in range(n):
        img = cv2.imread(str(files[pick[k % len(files)]]), cv2.IMREAD_COLOR)
        cv2.imwrite(str(root / "test_images" / f"h{k:05d}.jpg"), img if k % 2 == 0 else img[:, ::-1])
        ids.append(f"h{k:05d}")
    pd.DataFrame({"image_id": ids, "label": "Potato___healthy"}).to_csv(root / "sample_submission.csv", index=False)
    return root


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=200)
    ap.add_argument("--test", type=int, default=80)
    ap.add_argument("--hidden", type=int, default=640)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16, help="predict.batch_size: the test set spans several batches, "
                    "so the steady rate is measured apart from the first batch's warm-up")
    ap.add_argument("--cli", action="store_true", help="also time the command `podium predict --data` in a new "
                    "process (interpreter start included)")
    return ap.parse_args()


def train_run(args: argparse.Namespace, work: Path) -> Path:
    """The small run on a Kaggle-like potato subset; its training measures its test prediction."""
    import podium

    comp = make_competition(work / "comp", args.train, args.test)
    overrides = [f"model.img_size={args.size}", f"train.epochs={args.epochs}", "cv.folds=2", "train.batch_size=32",
                 f"predict.batch_size={args.batch}", "finetune.freeze_epochs=0", "run.report=false",
                 f"run.root={work / 'runs'}", "train.device=cpu", "predict.tta=[identity,hflip]"]
    return podium.train(comp, overrides=overrides).path


def measure(run: Path, hidden: Path, work: Path, cli: bool) -> tuple[float, float | None]:
    """Seconds of ``predict --data`` on the hidden set in this process and (``cli``) as a new process."""
    import podium

    t0 = time.perf_counter()
    podium.predict(run, data=hidden, out=work / "in_process.csv", device="cpu")
    measured = time.perf_counter() - t0
    if not cli:
        return measured, None
    os.environ["PODIUM_CACHE"] = str(work / "cache-cli")  # the command decodes the hidden set afresh too
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "podium", "predict", str(run), "--data", str(hidden), "--out",
                    str(work / "cli.csv"), "--device", "cpu"], check=True, capture_output=True)
    return measured, time.perf_counter() - t0


def main() -> None:
    args = parse()
    if os.environ.get("PODIUM_DATASETS"):  # a checkout whose ../shared/datasets is elsewhere (a git worktree)
        bench.common.DATA = Path(os.environ["PODIUM_DATASETS"])
    work = Path(tempfile.mkdtemp(prefix="podium-forecast-bench-"))
    os.environ["PODIUM_CACHE"] = str(work / "cache")
    import podium

    run = train_run(args, work)
    hidden = hidden_set(work / "hidden", args.hidden)
    f = podium.estimate_inference(run, args.hidden)
    load_before = os.getloadavg()[0]
    measured, measured_cli = measure(run, hidden, work, args.cli)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    ratio = f.total_s / measured
    result = {"machine": machine(), "args": vars(args), "scale": args.hidden / args.test,
              "forecast_s": f.total_s, "forecast_startup_s": f.startup_s, "forecast_decode_s": f.decode_s,
              "measured_s": measured, "measured_cli_s": measured_cli, "ratio": ratio,
              "ratio_cli": f.total_s / measured_cli if measured_cli else None, "within_25pct": abs(ratio - 1) <= 0.25,
              "load_avg_before_predict": load_before, "uptime_after": uptime, "source": f.members[0].source}
    rows = [("run", f"{args.size} px, {args.epochs} epoch(s), 2 folds, 2 TTA views, tf_efficientnet_lite0, "
                    f"predict batch {args.batch}"),
            ("throughput measured on", f"{args.test} test images (training's test prediction)"),
            ("hidden set", f"{args.hidden} fresh images ({args.hidden / args.test:.0f}x)"),
            ("forecast", f"{f.total_s:.1f} s (model loading {f.startup_s:.1f} s, decode {f.decode_s:.1f} s)"),
            ("measured predict --data (in process)", f"{measured:.1f} s"),
            ("forecast / measured", f"{ratio:.2f}"),
            ("load", uptime)]
    if measured_cli:
        rows.insert(-1, ("measured `podium predict --data` (new process)",
                         f"{measured_cli:.1f} s (forecast / this {f.total_s / measured_cli:.2f}; interpreter start not "
                         "forecast)"))
    show(rows)
    write_results("forecast", result, rows, "The forecast of `podium predict RUN --estimate N` against a measured "
                  "`predict --data` on a larger, fresh (uncached) hidden test set; 2-core CPU shared with other jobs.")


if __name__ == "__main__":
    main()
