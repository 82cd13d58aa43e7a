"""Training-step speed of the CPU compute options (channels_last, bf16 autocast, torch.compile), model only.

    python -m bench.cpu_compute [--model tf_efficientnet_lite0] [--size 128] [--batch 32] [--threads 2]

Prints images/second of each combination relative to plain fp32 NCHW, measured side by side in one run, and the loss
after the same steps (so a combination that breaks the numerics shows).
"""

from __future__ import annotations

import argparse
import time

import timm
import torch

from bench.common import machine, median_rate, show, write_results

COMBOS = {  # name: (channels_last, bf16, compile)
    "fp32": (False, False, False),
    "channels_last": (True, False, False),
    "channels_last+bf16": (True, True, False),
    "channels_last+compile": (True, False, True),
    "channels_last+bf16+compile": (True, True, True),
}


def step_rate(model_name: str, size: int, batch: int, channels_last: bool, bf16: bool, compile_: bool,
              steps: int, repeats: int) -> tuple[float, list[float], float, float]:
    torch.manual_seed(0)
    model = timm.create_model(model_name, num_classes=10)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    fwd = torch.compile(model) if compile_ else model
    losses = []

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(fwd(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())

    t0 = time.perf_counter()
    step()  # warm-up (and compilation)
    step()
    warm = time.perf_counter() - t0

    def run() -> int:
        for _ in range(steps):
            step()
        return steps * batch

    rate, rates = median_rate(run, repeats)
    return rate, rates, warm, losses[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--combos", default=",".join(COMBOS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res = {}
    for name in args.combos.split(","):
        rate, rates, warm, loss = step_rate(args.model, args.size, args.batch, *COMBOS[name], args.steps, args.repeats)
        res[name] = {"images_per_s": rate, "repeats": rates, "warmup_s": warm, "last_loss": loss}
        print(f"{name}: {rate:.1f} img/s (warm-up {warm:.1f} s, loss {loss:.4f})", flush=True)
    base = res[next(iter(res))]["images_per_s"]
    rows = [(f"{k} img/s", f"{v['images_per_s']:.1f} ({v['images_per_s'] / base:.2f}x, warm-up {v['warmup_s']:.0f} s)")
            for k, v in res.items()]
    show(rows)
    write_results(f"cpu_compute_{args.model}_{args.size}", {"machine": machine(), "args": vars(args), "results": res},
                  rows, "Model-only training step (AdamW, cross-entropy) on random tensors; median of repeats.")


if __name__ == "__main__":
    main()
