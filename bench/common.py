"""Shared helpers of the benches: machine description, medians of repeats, results as JSON and markdown."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def machine(device: str = "cpu") -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        cpu = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), cpu)
        flags = next((ln for ln in out.splitlines() if ln.startswith("Flags")), "")
        extras = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    except (OSError, subprocess.SubprocessError):
        extras = []
    info = {"cpu": cpu, "cpu_flags": extras, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "device": device,
            "load_avg_at_start": os.getloadavg()[0]}
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def median_rate(fn: Callable[[], int], repeats: int) -> tuple[float, list[float]]:
    """Median of ``repeats`` items-per-second rates; ``fn`` does the work and returns how many items it handled."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates), rates


def write_results(name: str, result: dict[str, Any], rows: list[tuple[str, str]], note: str = "") -> Path:
    """``bench/results/NAME.json`` and ``NAME.md`` (a two-column table of the headline numbers)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    result = {"bench": name, "when": stamp, **result}
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    lines = [f"# {name}", "", f"{stamp}; {m['cpu']} ({m['cores']} cores, torch threads {m['torch_threads']}"
             f"{', GPU ' + m['gpu'] if 'gpu' in m else ''}), torch {m['torch']}.", ""]
    if note:
        lines += [note, ""]
    lines += ["| quantity | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], ""]
    md = RESULTS / f"{name}.md"
    md.write_text("\n".join(lines))
    return md


def show(rows: list[tuple[str, str]]) -> None:
    """Print the headline numbers."""
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
