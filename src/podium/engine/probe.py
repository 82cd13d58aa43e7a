"""Memory probing: the largest training batch that fits on the GPU, and ``train.batch_size=auto`` built on it.

A real training step (forward, backward, optimiser step, with mixed precision and channels_last as configured) is
tried at growing batch sizes until CUDA runs out of memory, then the boundary is bisected. Out-of-memory errors are
caught and the memory released, so the probe never kills the process. On CPU nothing is probed: memory there is
rarely the limit and swapping makes a "fits" answer meaningless.
"""

from __future__ import annotations

import dataclasses
import gc
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from podium.config import ModelConfig, PodiumConfig, TrainConfig, shown_precision
from podium.engine.accel import resolve_device, resolve_precision
from podium.models.factory import create_model, resolve_preprocessing

SAFETY = 0.9  # keep 10% below the boundary: fragmentation and the validation pass need some room


@dataclass(frozen=True)
class ProbeResult:
    """What a probe found: ``batch_size`` is None when nothing was probed (``reason`` says why)."""

    model: str
    size: int | str
    device: str
    precision: str  # as people read it: fp32, bf16, fp16
    batch_size: int | None
    largest_fit: int | None
    reason: str = ""


def largest_batch(fits: Callable[[int], bool], start: int = 2, limit: int = 4096) -> int:
    """The largest ``b <= limit`` with ``fits(b)``, assuming fitting is monotone: doubling, then bisection.

    Returns 0 when not even a batch of ``start`` fits.
    """
    if not fits(start):
        return 0
    lo, hi = start, None
    while hi is None:
        nxt = min(lo * 2, limit)
        if nxt == lo:
            return lo
        if fits(nxt):
            lo = nxt
        else:
            hi = nxt
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def cuda_step_fits(model: torch.nn.Module, hw: tuple[int, int], num_classes: int, precision: str, channels_last: bool
                   ) -> Callable[[int], bool]:
    """A ``fits(batch)`` test that runs one training step of ``model`` on CUDA and reports whether memory sufficed."""
    device = torch.device("cuda")
    model = model.to(device).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")

    def fits(batch: int) -> bool:
        try:
            x = torch.randn(batch, 3, *hw, device=device).contiguous(memory_format=fmt)
            y = torch.randint(0, num_classes, (batch,), device=device)
            for _ in range(2):  # the second step holds the optimiser state too
                with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                    loss = torch.nn.functional.cross_entropy(model(x).float(), y)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            x = y = loss = None  # noqa: F841 - drop the references before freeing the cache
            gc.collect()
            torch.cuda.empty_cache()

    return fits


def probe(model_cfg: ModelConfig, train_cfg: TrainConfig, num_classes: int = 1000, limit: int = 4096) -> ProbeResult:
    """The largest training batch of ``model_cfg`` on this machine's GPU (mixed precision as ``train_cfg`` says)."""
    device = resolve_device(train_cfg.device)
    precision = resolve_precision(train_cfg.precision, device)
    model = create_model(model_cfg, num_classes, pretrained="none")  # the weights do not change the memory
    prep = resolve_preprocessing(model, model_cfg)
    size, shown = prep.size_label, shown_precision(precision)
    if device != "cuda":
        return ProbeResult(model_cfg.name, size, device, shown, None, None,
                           f"nothing is probed on {device}: memory probing needs a CUDA GPU")
    fits = cuda_step_fits(model, prep.hw, num_classes, precision, train_cfg.channels_last)
    found = largest_batch(fits, limit=limit)
    del fits, model  # the closure holds the model and its optimiser state on the GPU
    gc.collect()
    torch.cuda.empty_cache()
    if found == 0:
        return ProbeResult(model_cfg.name, size, device, shown, None, 0,
                           f"not even a batch of 2 fits at {size} px; use a smaller model.img_size or model")
    return ProbeResult(model_cfg.name, size, device, shown, max(1, int(found * SAFETY)), found)


def split_batch(effective: int, largest: int) -> tuple[int, int]:
    """(batch_size, accum_steps) with batch_size <= largest and batch_size x accum_steps == effective when possible
    (the fewest accumulation steps whose batch divides ``effective``; rounded up otherwise)."""
    if largest >= effective:
        return effective, 1
    for accum in range(math.ceil(effective / largest), effective + 1):
        if effective % accum == 0:
            return effective // accum, accum
    return largest, math.ceil(effective / largest)  # unreachable: accum == effective always divides


def resolve_auto_batch(cfg: PodiumConfig, num_classes: int) -> tuple[PodiumConfig, str]:
    """Replace ``train.batch_size=auto`` (0) by a concrete batch and accumulation; return the config and a note."""
    tc = cfg.train
    if tc.batch_size != 0:
        return cfg, ""
    result = probe(cfg.model, tc, num_classes)
    largest = result.batch_size or tc.effective_batch
    batch, accum = split_batch(tc.effective_batch, largest)
    how = (f"probed: {result.largest_fit} fit, {result.batch_size} used as the limit" if result.batch_size
           else result.reason)
    note = (f"train.batch_size=auto -> batch {batch} x accum {accum} = effective {batch * accum} "
            f"(train.effective_batch={tc.effective_batch}; {how})")
    return dataclasses.replace(cfg, train=dataclasses.replace(tc, batch_size=batch, accum_steps=accum)), note
