"""Training-step speed with and without ``train.cpu_keep_memory`` (glibc malloc keeps freed memory), model only.

    python -m bench.cpu_allocator [--model tf_efficientnet_lite0] [--size 128] [--batch 32] [--threads 2]

The setting is process-wide and cannot be undone, so each measurement runs in its own child process; the children
alternate (off, on, off, on, ...) and the ratios are of the medians. Each child reports images/second of the
channels_last fp32 training step (podium's CPU default), the page faults per step, and images/second of inference
(eval mode, the same batch).
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time

import timm
import torch

from bench.common import base_parser, machine, show, write_results
from bench.cpu_compute import step_rate
from podium.engine.accel import keep_freed_memory


def child(args: object) -> None:
    torch.set_num_threads(args.threads)
    kept = keep_freed_memory() if args.child == "on" else False
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    rate, rates, _, _ = step_rate(args.model, args.size, args.batch, True, False, False, args.steps, 1)
    steps = args.steps + 2  # step_rate's two warm-up steps
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / steps
    print(json.dumps({"images_per_s": rate, "faults_per_step": faults, "kept": kept,
                      "inference_per_s": inference_rate(args)}))


def inference_rate(args: object, seconds: float = 3.0) -> float:
    """Images/second of eval-mode forward passes on one channels_last batch, for ``seconds`` after a warm-up."""
    model = timm.create_model(args.model, num_classes=10).eval().to(memory_format=torch.channels_last)
    x = torch.randn(args.batch, 3, args.size, args.size).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            model(x)
            n += len(x)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", choices=("on", "off"), help="internal: run one measurement")
    args = ap.parse_args()
    if args.child:
        return child(args)
    res: dict[str, list[dict]] = {"off": [], "on": []}
    for r in range(args.repeats):
        for mode in ("off", "on"):
            cmd = [sys.executable, "-m", "bench.cpu_allocator", "--child", mode, "--model", args.model, "--size",
                   str(args.size), "--batch", str(args.batch), "--threads", str(args.threads), "--steps",
                   str(args.steps)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            res[mode].append(json.loads(out))
            print(f"repeat {r + 1} {mode}: {res[mode][-1]['images_per_s']:.1f} img/s, "
                  f"{res[mode][-1]['faults_per_step']:.0f} page faults/step, inference "
                  f"{res[mode][-1]['inference_per_s']:.1f} img/s", flush=True)
    med = {m: statistics.median(x["images_per_s"] for x in v) for m, v in res.items()}
    inf = {m: statistics.median(x["inference_per_s"] for x in v) for m, v in res.items()}
    faults = {m: statistics.median(x["faults_per_step"] for x in v) for m, v in res.items()}
    rows = [("training speedup (keep memory / glibc default)", f"{med['on'] / med['off']:.2f}x"),
            ("inference speedup", f"{inf['on'] / inf['off']:.2f}x ({inf['off']:.1f} -> {inf['on']:.1f} img/s)"),
            ("glibc default img/s (median)", f"{med['off']:.1f}  {[round(x['images_per_s'], 1) for x in res['off']]}"
                                             f"  ({faults['off']:.0f} page faults/step)"),
            ("cpu_keep_memory img/s (median)", f"{med['on']:.1f}  {[round(x['images_per_s'], 1) for x in res['on']]}"
                                               f"  ({faults['on']:.0f} page faults/step)"),
            ("setup", f"{args.model} {args.size}px batch {args.batch}, {args.threads} threads, channels_last fp32, "
                      f"{args.steps} timed steps per child")]
    show(rows)
    m = machine()
    m["torch_threads"] = args.threads
    write_results(f"cpu_allocator_{args.model}_{args.size}", {"machine": m, "args": vars(args), "results": res,
                                                              "speedup": med["on"] / med["off"],
                                                              "inference_speedup": inf["on"] / inf["off"]}, rows,
                  "Model-only training step in child processes, alternating; medians of repeats.")


if __name__ == "__main__":
    main()
