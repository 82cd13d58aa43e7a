"""Devices, precision and data loaders, through Accelerate so ``accelerate launch podium train`` works unchanged."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from torch.utils.data import DataLoader, Dataset

from podium.config import PodiumConfig, TrainConfig
from podium.core.errors import PodiumError
from podium.data.training.dataset import EpochShuffleSampler, collate
from podium.engine.finetune import effective_finetune


def resolve_device(name: str) -> str:
    """The concrete device type for ``auto``, ``cpu``, ``cuda`` or ``mps``, checking that it exists."""
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if name == "auto":
        return "cuda" if available["cuda"] else ("mps" if available["mps"] else "cpu")
    if name not in available:
        raise PodiumError(f"Unknown device {name!r}; choose from auto, cpu, cuda, mps.")
    if not available[name]:
        raise PodiumError(f"train.device={name} but no {name.upper()} device is available here; use train.device=auto.")
    return name


def resolve_precision(name: str, device: str) -> str:
    """Accelerate's mixed_precision value: auto picks bf16 (or fp16 on older GPUs) on CUDA and fp32 elsewhere.

    On CPUs, bf16 autocast helps some architectures and hurts others (measured on a 2-core AVX512-BF16/AMX Xeon,
    training step, channels_last: resnet18 at 128 px 2.2x faster, tf_efficientnet_lite0 at 128 px 0.87x, whose
    depthwise convolutions gain nothing), so the default stays fp32, exact and fastest for the default model;
    ``train.precision=bf16`` is the documented switch for ResNet-like backbones (see bench/cpu_compute.py).
    """
    if name == "auto":
        if device == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "no"
    if name not in ("no", "bf16", "fp16"):
        raise PodiumError(f"Unknown train.precision {name!r}; choose from auto, no, bf16, fp16.")
    if name == "fp16" and device == "cpu":
        raise PodiumError("train.precision=fp16 needs a GPU; on CPU use bf16 or no.")
    return name


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory in the process; False where the C library is not glibc.

    A CPU training step frees and re-allocates the same activation buffers every step. By default glibc serves such
    large blocks with mmap and returns them on free, so the next step page-faults them back in, zero-filled (30,000
    to 100,000 faults per step for tf_efficientnet_lite0 at 128 px, batch 32). With mmap off and trimming only above
    1 GiB the buffers are reused, which is what preloading jemalloc or tcmalloc does for PyTorch on CPU:
    bench/cpu_allocator.py measures the gain. Process-wide (later allocations only), and loader workers inherit it.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_max = -1, -2, -4  # <malloc.h>
    return bool(mallopt(m_mmap_max, 0) and mallopt(m_trim_threshold, 1 << 30) and mallopt(m_top_pad, 64 << 20))


def make_accelerator(cfg: TrainConfig, partly_frozen: bool = False) -> Accelerator:
    """An Accelerator for this config (device, precision, gradient accumulation).

    ``partly_frozen``: some parameters get no gradient for a while (head-only warm-up epochs). DistributedDataParallel
    then has to look for unused parameters on every step, or it waits forever for their gradients and fails with
    "Expected to have finished reduction in the prior iteration".
    """
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if device == "cpu" and cfg.cpu_keep_memory:
        keep_freed_memory()
    precision = resolve_precision(cfg.precision, device)
    # Accelerate keeps the device and precision process-wide (its public contract: one setting per process), so a
    # second run in the same process (a notebook, a sweep) reuses them; gradient accumulation is per Accelerator.
    try:
        accelerator = Accelerator(
            cpu=device == "cpu", mixed_precision=precision, gradient_accumulation_steps=cfg.accum_steps,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=partly_frozen)],
            # non_blocking host->GPU copies overlap with compute; they need the pinned memory make_loader asks for.
            dataloader_config=DataLoaderConfiguration(non_blocking=device == "cuda"))
    except ValueError as e:
        if "already been initialized" not in str(e):
            raise
        raise PodiumError(f"This Python process already trained with another device or precision than "
                          f"train.device={cfg.device} train.precision={cfg.precision}; Accelerate fixes both once per "
                          "process. Restart the kernel (or run another process) to change them.") from None
    if accelerator.device.type != device:
        raise PodiumError(f"This Python process already runs on {accelerator.device.type}, not {device}; Accelerate "
                          "fixes the device once per process. Restart the kernel to change train.device.")
    return accelerator


def inference_accelerator(device: str, cfg: PodiumConfig | None = None, precision: str = "") -> Accelerator:
    """The Accelerator that saved models predict with on ``device``: the run's ``cfg`` precision and threads (without
    ``cfg``, a machine other than the training one: ``auto`` precision, torch's threads); ``precision`` overrides
    the run's (``no`` where answers must be exact fp32, as the export's parity check)."""
    train = cfg.train if cfg is not None else TrainConfig()
    return make_accelerator(TrainConfig(device=device, precision=precision or train.precision, threads=train.threads))


def training_accelerator(cfg: PodiumConfig) -> Accelerator:
    """The Accelerator of a training run: ``make_accelerator``, partly frozen while head-only warm-up epochs
    (``finetune.freeze_epochs``) leave the backbone without gradients."""
    return make_accelerator(cfg.train, effective_finetune(cfg.finetune, cfg.model.pretrained).freeze_epochs > 0)


def maybe_compile(model: torch.nn.Module, cfg: TrainConfig) -> None:
    """Compile ``model``'s forward in place when ``train.compile`` is on (compiling takes a minute or more).

    In place (``Module.compile``) rather than ``torch.compile(model)``: the state_dict keys, the EMA copy and the
    checkpoints stay those of the plain model.
    """
    if cfg.compile:
        model.compile()


def num_workers(requested: int, device: str) -> int:
    """Loader workers: the configured count, or one per spare core (up to 8) on GPUs and 1 on CPU-only machines.

    On a CPU-only machine the model's own threads need the cores; one worker decodes ahead of the step.
    """
    if requested >= 0:
        return requested
    cores = os.cpu_count() or 1
    return max(1, min(8, cores - 1)) if device == "cuda" else min(1, cores - 1)


def loader_start_method() -> str | None:
    """How loader workers start: forked on Linux, named explicitly because inside a spawned process (``sweep --jobs``,
    ``search --jobs``) Python's default becomes spawn, and every loader then started workers that import torch and
    podium again: 12-14 s of a tiny run's test prediction went to that. Elsewhere the platform's default."""
    return "fork" if sys.platform.startswith("linux") else None


def _resource_sharer_lost_peer(exc_type: type, tb) -> bool:
    """Whether an uncaught exception is multiprocessing's fd server losing the process it was handing a batch to."""
    if not issubclass(exc_type, (ConnectionError, EOFError)):
        return False
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(os.path.join("multiprocessing", "resource_sharer.py")):
            return True
        tb = tb.tb_next
    return False


def quiet_worker(_worker_id: int) -> None:
    """Loader workers' init: when the main process is interrupted (SIGTERM, Ctrl-C) while it is receiving a batch, the
    worker's fd-sharing thread loses its peer and Python's ``resource_sharer`` prints that as a traceback under the
    interruption's own clear message. Only that one case is silenced; any other uncaught error is printed as before."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb):  # noqa: ANN001 - sys.excepthook's signature
        if not _resource_sharer_lost_peer(exc_type, tb):
            previous(exc_type, exc, tb)

    sys.excepthook = hook


def make_loader(dataset: Dataset, batch_size: int, workers: int, device: str, shuffle_seed: int | None = None,
                weights: np.ndarray | None = None) -> DataLoader:
    """A DataLoader: seeded per-epoch shuffling (or weighted sampling with ``weights``) and no ragged last batch for
    training, fixed order otherwise."""
    train = shuffle_seed is not None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochShuffleSampler(len(dataset), shuffle_seed, weights) if train else None,
        num_workers=workers,
        pin_memory=device == "cuda",
        persistent_workers=workers > 0,  # workers keep their opened cache maps and transforms across epochs
        multiprocessing_context=loader_start_method() if workers > 0 else None,
        worker_init_fn=quiet_worker if workers > 0 else None,
        prefetch_factor=4 if workers > 0 else None,
        drop_last=train and len(dataset) > batch_size,  # a batch of one breaks BatchNorm
        collate_fn=collate,
        # Its own generator: starting an epoch's iterator would otherwise draw from torch's global generator, which
        # dropout also draws from, so a resumed fold would see other dropout masks than an uninterrupted one.
        generator=torch.Generator().manual_seed(0 if shuffle_seed is None else shuffle_seed),
    )


def eval_batch_size(cfg: PodiumConfig) -> int:
    """Images per batch when predicting (validation, OOF, test, ensembles): ``predict.batch_size``, else twice the
    training batch, as no gradients or optimiser state take memory then."""
    return cfg.predict.batch_size or 2 * cfg.train.batch_size
