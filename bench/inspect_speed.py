"""Seconds for `podium inspect` on a dataset (default: plant-pathology-2021-mini, 3,599 images), cold and cached.

Cold: an empty podium check cache (every image read, SHA-1'd, decoded and pHashed); cached: the same command again,
answered from the cache keyed by file size and mtime. Both run as the real CLI in a subprocess, side by side in one
run (the OS page cache is warm for both after the first read, so "cold" measures podium's work, not the disk).

    PYTHONPATH=src python bench/inspect_speed.py [DATA_DIR] [--repeats 3]

Prints a table and writes bench/results/inspect_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "datasets" / "plant-pathology-2021-mini"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, Python " \
           f"{platform.python_version()}"


def run_inspect(data: Path, cache: Path, out: Path) -> tuple[float, float]:
    """Wall seconds of the CLI process, and the seconds of its check pass (from inspect.json)."""
    env = {**os.environ, "PODIUM_CACHE": str(cache), "PYTHONPATH": str(ROOT / "src")}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "podium", "inspect", str(data), "--out", str(out)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    return wall, json.loads((out / "inspect.json").read_text())["check_seconds"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?", default=str(DEFAULT))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    data = Path(args.data).resolve()
    cold, cached, cold_checks, cached_checks = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            cache = Path(tmp) / f"cache{r}"
            for walls, checks in ((cold, cold_checks), (cached, cached_checks)):
                wall, check = run_inspect(data, cache, Path(tmp) / "out")
                walls.append(wall)
                checks.append(check)
        summary = json.loads((Path(tmp) / "out" / "inspect.json").read_text())
    n = summary["train_images"] + summary["test_images"] + len(summary["bad_files"])
    result = {
        "dataset": data.name, "images": n, "repeats": args.repeats,
        "cold_s": cold, "cached_s": cached, "cold_median_s": sorted(cold)[len(cold) // 2],
        "cached_median_s": sorted(cached)[len(cached) // 2],
        "cold_check_pass_s": cold_checks, "cached_check_pass_s": cached_checks,
        "duplicate_clusters": summary["duplicates"]["clusters"], "machine": machine(),
        "note": "wall time of the whole CLI process (start-up and contact sheet included); other engineers' jobs "
                "shared the 2 CPUs during the run",
    }
    result["speedup"] = result["cold_median_s"] / result["cached_median_s"]
    lines = [
        f"# podium inspect on {data.name} ({n} images)", "",
        f"Machine: {result['machine']}. {result['note']}.", "",
        "| run | median s | all runs s |", "|---|---|---|",
        f"| cold (empty check cache) | {result['cold_median_s']:.2f} | {', '.join(f'{t:.2f}' for t in cold)} |",
        f"| cached (size + mtime) | {result['cached_median_s']:.2f} | {', '.join(f'{t:.2f}' for t in cached)} |",
        "", f"cold / cached = {result['speedup']:.1f}x; duplicate clusters found: {result['duplicate_clusters']}",
        f"check pass alone (in the process, without start-up and contact sheet): cold "
        f"{', '.join(f'{t:.2f}' for t in cold_checks)} s, cached {', '.join(f'{t:.2f}' for t in cached_checks)} s",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "inspect_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "inspect_speed.md").write_text(text)


if __name__ == "__main__":
    main()
