"""What report.html adds to a short run: the run's wall time (report off) against the time to build the report
from its folder (matplotlib, Grad-CAM and chromium-free), in the same process, as `podium train` does at its end.
Also screenshots the page in headless Chromium (when on PATH) for the README.

    flock /tmp/podium-bench.lock env PYTHONPATH=src python -m bench.report_cost [--data potato] [--folds 2]
        [--epochs 2] [--shot docs/images/report_potato.png] [section.key=value ...]

Writes bench/results/report_cost_<data>.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import DATA, machine, show, write_results


def screenshot(page: Path, out: Path, height: int) -> None:
    """A 1400 px wide screenshot of ``page`` (the top ``height`` px), as an optimised PNG under ~500 KB."""
    from PIL import Image

    browser = shutil.which("chromium")
    if browser is None:
        print("no chromium: no screenshot")
        return
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "shot.png"
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp}/ud",
                        f"--screenshot={raw}", f"--window-size=1400,{height}", page.as_uri()],
                       capture_output=True, timeout=180, check=True)
        img = Image.open(raw).convert("RGB")
        img = img.resize((img.width * 2 // 3, img.height * 2 // 3), Image.Resampling.LANCZOS)
        out.parent.mkdir(parents=True, exist_ok=True)
        img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"screenshot {out} ({out.stat().st_size // 1024} KB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="potato")
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--shot", default="")
    ap.add_argument("--shot-height", type=int, default=5200)
    ap.add_argument("overrides", nargs="*", help="more config overrides, e.g. finetune.freeze_epochs=0")
    args = ap.parse_args()

    import podium
    from podium.reporting import build_report

    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = podium.train(DATA / args.data, overrides=[
            f"model.name={args.model}", f"model.img_size={args.size}", f"cv.folds={args.folds}",
            f"train.epochs={args.epochs}", "train.threads=2", f"run.root={tmp}", "run.report=false", *args.overrides])
        wall = time.perf_counter() - t0
        t1 = time.perf_counter()
        path = build_report(run)
        report_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        build_report(run)
        again_s = time.perf_counter() - t2
        size_kb = path.stat().st_size / 1024
        if args.shot:
            screenshot(path, Path(args.shot), args.shot_height)
        score = f"{run.metrics['metric']} {run.metrics['cv_score']:.4f}"
    rows = [("data", args.data), ("run", f"{args.model} {args.size} px, {args.folds} folds x {args.epochs} epochs"),
            ("CV", score), ("run wall s (report off)", f"{wall:.1f}"),
            ("report s (first, imports included)", f"{report_s:.1f}"), ("report s (again)", f"{again_s:.1f}"),
            ("report / run", f"{100 * report_s / wall:.1f}%"), ("report.html KB", f"{size_kb:.0f}")]
    show(rows)
    write_results(f"report_cost_{args.data}", {"machine": machine(), "wall_s": wall, "report_s": report_s,
                                               "report_again_s": again_s, "html_kb": size_kb, "cv": score},
                  rows, note=f"Load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (2 "
                             "cores): run and report share the load, so their ratio holds; their seconds do not.")


if __name__ == "__main__":
    main()
