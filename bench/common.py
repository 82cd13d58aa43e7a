"""Shared helpers of the benches: machine description, medians of repeats, results as JSON and markdown."""

from __future__ import annotations

import argparse
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


def base_parser(doc: str | None, batch: int = 32) -> argparse.ArgumentParser:
    """The options every model bench takes: model, size, batch and torch threads."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--threads", type=int, default=2)
    return ap


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


def potato() -> Path:
    """The real dataset the benches use (read-only)."""
    path = DATA / "potato"
    if not path.is_dir():
        raise SystemExit(f"{path} is not available")
    return path


def loader_parser(doc: str | None, images: int) -> argparse.ArgumentParser:
    """The options of the loader-only benches: the model (for its preprocessing), size, images and repeats."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tf_efficientnet_lite0", help="only its preprocessing (size, interpolation)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--images", type=int, default=images)
    ap.add_argument("--repeats", type=int, default=3)
    return ap


def potato_sample(model: str, size: int, images: int, shuffle: bool = True) -> tuple[Any, Any, Any, Any]:
    """Config, competition, ``images`` row indices of potato (shuffled with seed 0, or the first ones) and the
    model's resolved preprocessing, for the loader-only benches."""
    import numpy as np

    from podium.config import load_config
    from podium.data.folders.ingest import load_competition
    from podium.models.factory import create_model, resolve_preprocessing

    cfg = load_config(None, [f"model.name={model}", f"model.img_size={size}"])
    comp = load_competition(potato(), cfg.data, check=False)
    order = np.random.default_rng(0).permutation(len(comp.train)) if shuffle else np.arange(len(comp.train))
    return cfg, comp, order[:images], resolve_preprocessing(create_model(cfg.model, len(comp.classes)), cfg.model)


def fold0(data_dir: Path, overrides: list[str], n_train: int = 0, seed: int = 0, n_val: int = 0
          ) -> tuple[Any, Any, Any, Any]:
    """Config, competition and the training and validation rows of fold 0 of 5 (see podium_setup); builds nothing,
    so a bench can hand the same split to another library before podium sets anything up."""
    import numpy as np

    from podium.config import load_config
    from podium.data.folders.ingest import load_competition
    from podium.data.training.folds import make_folds

    cfg = load_config(None, ["cv.folds=5", *overrides])
    comp = load_competition(data_dir, cfg.data, check=False)
    folds = make_folds(comp.targets, comp.task, cfg.cv.folds, cfg.cv.seed)
    train_idx, val_idx = np.flatnonzero(folds != 0), np.flatnonzero(folds == 0)
    if n_train:
        train_idx = np.sort(np.random.default_rng(seed).permutation(train_idx)[:n_train])
    if n_val:
        val_idx = np.sort(np.random.default_rng(seed).permutation(val_idx)[:n_val])
    return cfg, comp, train_idx, val_idx


def podium_setup(data_dir: Path, overrides: list[str], n_train: int = 0, seed: int = 0, n_val: int = 0
                 ) -> dict[str, Any]:
    """What podium's fit_fold builds for fold 0 (5 folds): config, accelerator, model, preprocessing, datasets (with
    the decoded-image cache as configured), loaders, optimiser, schedule, loss and EMA. ``n_train`` > 0 keeps that
    many training images (a shorter epoch), ``n_val`` > 0 that many validation images."""
    from timm.utils import ModelEmaV3

    from podium.data.pixels.cache import decoded_images
    from podium.data.training.dataset import ImageDataset
    from podium.data.training.transforms import create_transform
    from podium.engine.accel import make_accelerator, make_loader, maybe_compile, num_workers
    from podium.engine.losses import create_loss
    from podium.engine.optim import create_optimizer, create_scheduler
    from podium.models.factory import create_model, resolve_preprocessing

    cfg, comp, train_idx, val_idx = fold0(data_dir, overrides, n_train, seed, n_val)
    tc = cfg.train
    accelerator = make_accelerator(tc)
    torch.manual_seed(tc.seed)
    model = create_model(cfg.model, len(comp.classes))
    prep = resolve_preprocessing(model, cfg.model)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    paths, targets = comp.train["path"].to_numpy(), comp.targets
    t0 = time.perf_counter()
    images = decoded_images(paths, prep.size, cfg.data)
    cache_s = time.perf_counter() - t0
    device = accelerator.device.type
    workers = num_workers(tc.num_workers, device)
    train_ds = ImageDataset(paths[train_idx], targets[train_idx], create_transform(prep, cfg.aug, train=True),
                            None if images is None else images.take(train_idx))
    val_ds = ImageDataset(paths[val_idx], targets[val_idx], create_transform(prep),
                          None if images is None else images.take(val_idx))
    train_loader = make_loader(train_ds, tc.batch_size, workers, device, shuffle_seed=tc.seed)
    sampler = train_loader.sampler
    val_loader = make_loader(val_ds, cfg.predict.batch_size or 2 * tc.batch_size, workers, device)
    loss_fn = create_loss(tc.loss, comp.task, tc.label_smoothing, tc.class_weights, targets[train_idx],
                          len(comp.classes))
    optimizer = create_optimizer(model, tc)
    model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
    scheduler = create_scheduler(optimizer, tc, len(train_loader))
    ema = ModelEmaV3(accelerator.unwrap_model(model), decay=tc.ema_decay, use_warmup=True) if tc.ema else None
    maybe_compile(accelerator.unwrap_model(model), tc)
    return {"cfg": cfg, "comp": comp, "accelerator": accelerator, "model": model, "prep": prep, "ema": ema,
            "train_ds": train_ds, "val_ds": val_ds, "train_loader": train_loader, "val_loader": val_loader,
            "sampler": sampler, "optimizer": optimizer, "scheduler": scheduler, "loss_fn": loss_fn,
            "workers": workers, "cache_s": cache_s, "val_targets": targets[val_idx], "train_idx": train_idx,
            "train_paths": paths[train_idx].tolist(), "val_paths": paths[val_idx].tolist()}
