"""Does the data pipeline starve the model? Training images/second of a real podium epoch (potato JPEGs through the
decoded-image cache, augmentations on, podium's loader) divided by the same training step on batches already in
memory (same model, size, batch, precision, EMA). Target: >= 0.95.

    python -m bench.loader_efficiency [--model tf_efficientnet_lite0] [--size 128] [--batch 32] [--threads 2]
    python -m bench.loader_efficiency --device cuda --model resnet50 --size 224 --batch 64 --images 4000

Both sides run alternately in one process, after one warm-up epoch each; the ratio is of the medians.
"""

from __future__ import annotations

import statistics

import torch

from bench.common import base_parser, machine, podium_setup, potato, show, write_results
from podium.engine.loop import TrainContext, train_one_epoch


def main() -> None:
    ap = base_parser(__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--workers", type=int, default=-1, help="loader workers; -1: podium's default")
    ap.add_argument("--images", type=int, default=640, help="training images per epoch (a subset of fold 0)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cache", default="true", help="data.cache (true/false)")
    args = ap.parse_args()
    s = podium_setup(potato(), [f"model.name={args.model}", f"model.img_size={args.size}",
                                f"train.batch_size={args.batch}", f"train.threads={args.threads}",
                                f"train.device={args.device}", f"train.precision={args.precision}",
                                f"train.num_workers={args.workers}", f"data.cache={args.cache}", "train.epochs=100"],
                     n_train=args.images)
    acc, tc = s["accelerator"], s["cfg"].train
    print(f"{args.model} {args.size}px batch {args.batch} on {acc.device} ({acc.mixed_precision}), "
          f"{s['workers']} loader workers, {len(s['train_ds'])} images/epoch; cache built/checked in "
          f"{s['cache_s']:.1f} s", flush=True)

    def epoch(loader: object, e: int) -> float:
        s["sampler"].set_epoch(e)
        ctx = TrainContext(s["model"], s["optimizer"], s["scheduler"], s["loss_fn"], acc, s["prep"], s["ema"],
                           tc.clip_grad, tc.channels_last)
        stats = train_one_epoch(ctx, loader, "bench")
        return stats["images_per_s"]

    # The in-memory side: the same augmented uint8 batches, already on the device, so only the step is timed.
    s["sampler"].set_epoch(10_000)
    memory = [(x.clone(), y.clone(), i) for x, y, i in s["train_loader"]]
    if acc.device.type == "cuda":
        torch.cuda.synchronize()
    epoch(s["train_loader"], 0)  # warm-up: worker start, allocator, cudnn autotuning
    epoch(memory, 0)
    pipeline, model_only = [], []
    for r in range(args.repeats):
        pipeline.append(epoch(s["train_loader"], r + 1))
        model_only.append(epoch(memory, r + 1))
        print(f"repeat {r + 1}: podium epoch {pipeline[-1]:.1f} img/s, in-memory {model_only[-1]:.1f} img/s",
              flush=True)
    p, m = statistics.median(pipeline), statistics.median(model_only)
    ratio = p / m
    rows = [("ratio (podium epoch / in-memory)", f"{ratio:.3f} (target >= 0.95)"),
            ("podium epoch img/s (median)", f"{p:.1f}  {[round(v, 1) for v in pipeline]}"),
            ("in-memory img/s (median)", f"{m:.1f}  {[round(v, 1) for v in model_only]}"),
            ("setup", f"{args.model} {args.size}px batch {args.batch}, {acc.device.type} {acc.mixed_precision}, "
                      f"{s['workers']} workers, cache {args.cache}, {len(s['train_ds'])} images/epoch")]
    show(rows)
    name = f"loader_efficiency_{args.device}_{args.model}_{args.size}" + ("" if args.cache == "true" else "_nocache")
    write_results(name, {"machine": machine(acc.device.type), "args": vars(args), "ratio": ratio,
                         "podium_img_s": pipeline, "in_memory_img_s": model_only, "workers": s["workers"],
                         "precision": acc.mixed_precision, "cache_build_s": s["cache_s"]}, rows,
                  "Training images/s of a podium epoch (potato, augmentations on, decoded-image cache) vs the same "
                  "step on in-memory batches; medians of repeats, run alternately in one process.")


if __name__ == "__main__":
    main()
