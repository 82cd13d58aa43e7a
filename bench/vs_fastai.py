"""Seconds per epoch of podium vs fastai's ``vision_learner(...).fit_one_cycle`` on the same data (potato, 80/20
split), model (tf_efficientnet_lite0, random init on both sides), image size, batch size, loader workers and torch
threads, one after the other in one process: fastai first, because podium's train.cpu_keep_memory changes the C
library's malloc for the rest of the process. Each side runs with its own defaults otherwise (podium: decoded-image
cache, channels_last, fused AdamW, malloc keeping freed memory; fastai: fp32, its default augmentations). An epoch is
the training pass plus the validation pass. Target: podium <= 0.6x fastai's time per epoch.

    python -m bench.vs_fastai [--size 128] [--batch 32] [--threads 2] [--epochs 2] [--images 0]

fastai is a bench-only dependency (pip install fastai); podium never imports it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.common import base_parser, fold0, machine, podium_setup, potato, show, write_results
from podium.engine.loop import TrainContext, evaluate, train_one_epoch


def podium_epochs(args: argparse.Namespace) -> tuple[list[float], float, str, list[str], list[str]]:
    n_val = int(round(args.images * 0.2)) if args.images else 0
    s = podium_setup(potato(), [f"model.name={args.model}", "model.pretrained=none", f"model.img_size={args.size}",
                                f"train.batch_size={args.batch}", f"train.threads={args.threads}",
                                f"train.num_workers={args.workers}", f"train.epochs={args.epochs}"],
                     n_train=args.images - n_val if args.images else 0, n_val=n_val)
    acc, tc = s["accelerator"], s["cfg"].train
    times, metric = [], float("nan")
    for e in range(args.epochs):
        t0 = time.perf_counter()
        s["sampler"].set_epoch(e)
        train_one_epoch(TrainContext(s["model"], s["optimizer"], s["scheduler"], s["loss_fn"], acc, s["prep"], s["ema"],
                                     tc.clip_grad, tc.channels_last), s["train_loader"], "podium")
        eval_model = s["ema"].module if s["ema"] is not None else s["model"]
        metrics, _ = evaluate(eval_model, s["val_loader"], s["prep"], acc, s["comp"].task, s["val_targets"],
                              s["loss_fn"], channels_last=tc.channels_last)
        times.append(time.perf_counter() - t0)
        metric = metrics["accuracy"]
        print(f"podium epoch {e + 1}: {times[-1]:.1f} s, accuracy {metric:.3f}", flush=True)
    how = f"{acc.mixed_precision}, {s['workers']} workers, cache built in {s['cache_s']:.1f} s"
    return times, metric, how, s["train_paths"], s["val_paths"]


def split_paths(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The training and validation files podium_epochs will use (fold 0 of podium's folds, same subset)."""
    n_val = int(round(args.images * 0.2)) if args.images else 0
    _, comp, train_idx, val_idx = fold0(potato(), [], n_train=args.images - n_val if args.images else 0, n_val=n_val)
    paths = comp.train["path"].to_numpy()
    return paths[train_idx].tolist(), paths[val_idx].tolist()


def fastai_epochs(args: argparse.Namespace, workers: int, train: list[str], val: list[str]
                  ) -> tuple[list[float], float]:
    from fastai.callback.core import Callback
    from fastai.metrics import accuracy
    from fastai.vision.all import (
        CategoryBlock,
        DataBlock,
        FuncSplitter,
        ImageBlock,
        Path,
        Resize,
        aug_transforms,
        parent_label,
        vision_learner,
    )

    times: list[float] = []

    class EpochTimer(Callback):
        def before_epoch(self) -> None:
            self.t0 = time.perf_counter()

        def after_epoch(self) -> None:
            times.append(time.perf_counter() - self.t0)
            print(f"fastai epoch {len(times)}: {times[-1]:.1f} s", flush=True)

    valid = set(val)  # the same split as podium's
    block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda _: [Path(p) for p in train + val],
                      get_y=parent_label, splitter=FuncSplitter(lambda p: str(p) in valid),
                      item_tfms=Resize(int(round(args.size * 1.25))), batch_tfms=aug_transforms(size=args.size,
                                                                                                min_scale=0.6))
    dls = block.dataloaders(potato() / "train", bs=args.batch, num_workers=workers, device=torch.device("cpu"))
    learn = vision_learner(dls, args.model, pretrained=False, metrics=accuracy, cbs=[EpochTimer()])
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(args.epochs)
    return times, float(learn.recorder.values[-1][-1])


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--workers", type=int, default=-1, help="loader workers of both; -1: podium's CPU default")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--images", type=int, default=0, help="a subset of potato (80/20 split); 0: all 2,152")
    args = ap.parse_args()
    from podium.engine.accel import num_workers

    workers = num_workers(args.workers, "cpu")
    torch.set_num_threads(args.threads)
    train, val = split_paths(args)
    f_times, f_acc = fastai_epochs(args, workers, train, val)
    torch.set_num_threads(args.threads)
    p_times, p_acc, p_how, p_train, p_val = podium_epochs(args)
    assert (p_train, p_val) == (train, val), "both sides must see the same split"
    p, f = statistics.median(p_times), statistics.median(f_times)
    rows = [("podium / fastai seconds per epoch", f"{p / f:.3f} (target <= 0.6)"),
            ("podium s/epoch (median)", f"{p:.1f}  {[round(v, 1) for v in p_times]}  ({p_how})"),
            ("fastai s/epoch (median)", f"{f:.1f}  {[round(v, 1) for v in f_times]}  (fp32)"),
            ("accuracy after the last epoch", f"podium {p_acc:.3f}, fastai {f_acc:.3f} (random init, few epochs)"),
            ("setup", f"{args.model} {args.size}px batch {args.batch}, {args.threads} threads, {workers} workers, "
                      f"{args.epochs} epochs each, {len(train)} train + {len(val)} validation images")]
    show(rows)
    write_results("vs_fastai", {"machine": machine(), "args": vars(args), "ratio": p / f, "podium_s": p_times,
                                "fastai_s": f_times, "podium_accuracy": p_acc, "fastai_accuracy": f_acc}, rows,
                  "Seconds per epoch (train + validation), podium then fastai in one process; medians of epochs.")


if __name__ == "__main__":
    main()
