"""What 4-view TTA costs: images/second of inference with views identity,hflip,vflip,hvflip vs plain inference,
both through podium's one prediction path (predict_logits: the images of a batch are loaded and normalised once for
all views; on CPU each view is its own forward pass, on GPUs they are stacked into one). Target: TTA rate >= 0.9 x
(plain rate / 4). Also measured side by side: the views stacked into one forward pass on this device
(``views_together=True``), the GPU policy.

    python -m bench.tta_cost [--model tf_efficientnet_lite0] [--size 128] [--batch 64] [--images 384] [--threads 2]
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from bench.common import base_parser, machine, potato, show, write_results
from podium.config import load_config
from podium.data.folders.ingest import load_competition
from podium.data.pixels.cache import decoded_images
from podium.data.training.dataset import ImageDataset
from podium.data.training.transforms import create_transform
from podium.engine.accel import make_accelerator, make_loader, num_workers
from podium.engine.loop import predict_logits
from podium.models.factory import create_model, resolve_preprocessing

VIEWS = ("identity", "hflip", "vflip", "hvflip")


def main() -> None:
    ap = base_parser(__doc__, batch=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--images", type=int, default=384)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cfg = load_config(None, [f"model.name={args.model}", f"model.img_size={args.size}", f"train.threads={args.threads}",
                             f"train.device={args.device}", f"train.precision={args.precision}"])
    comp = load_competition(potato(), cfg.data, check=False)
    pick = np.random.default_rng(0).permutation(len(comp.train))[: args.images]
    paths = comp.train["path"].to_numpy()[pick].tolist()
    accelerator = make_accelerator(cfg.train)
    device = accelerator.device.type
    model = create_model(cfg.model, len(comp.classes))
    prep = resolve_preprocessing(model, cfg.model)
    model = model.to(accelerator.device).eval()
    if cfg.train.channels_last:
        import torch

        model = model.to(memory_format=torch.channels_last)
    ds = ImageDataset(paths, None, create_transform(prep), decoded_images(paths, prep.size, cfg.data))
    workers = num_workers(cfg.train.num_workers, device)
    loader = accelerator.prepare_data_loader(make_loader(ds, args.batch, workers, device))

    def rate(views: tuple[str, ...], together: bool | None = None) -> float:
        t0 = time.perf_counter()
        predict_logits(model, loader, prep, accelerator, views, cfg.train.channels_last, views_together=together)
        return len(ds) / (time.perf_counter() - t0)

    rate(VIEWS[:1]), rate(VIEWS), rate(VIEWS, True)  # warm-up
    plain, tta, stacked = [], [], []
    for r in range(args.repeats):
        plain.append(rate(VIEWS[:1]))
        tta.append(rate(VIEWS))
        stacked.append(rate(VIEWS, True))
        print(f"repeat {r + 1}: plain {plain[-1]:.1f} img/s, 4-view TTA {tta[-1]:.1f} img/s, views stacked "
              f"{stacked[-1]:.1f} img/s", flush=True)
    p, t, st = statistics.median(plain), statistics.median(tta), statistics.median(stacked)
    ratio = t / (p / 4)
    rows = [("TTA rate / (plain rate / 4)", f"{ratio:.3f} (target >= 0.9)"),
            ("plain img/s (median)", f"{p:.1f}  {[round(v, 1) for v in plain]}"),
            ("4-view TTA img/s (median)", f"{t:.1f}  {[round(v, 1) for v in tta]}"),
            ("views stacked in one pass: img/s, ratio", f"{st:.1f}  {[round(v, 1) for v in stacked]}, "
                                                        f"{st / (p / 4):.3f}"),
            ("setup", f"{args.model} {args.size}px batch {args.batch}, {device} {accelerator.mixed_precision}, "
                      f"{workers} workers, {len(ds)} images, views {','.join(VIEWS)}")]
    show(rows)
    write_results(f"tta_cost_{device}_{args.model}_{args.size}", {
        "machine": machine(device), "args": vars(args), "ratio": ratio, "plain_img_s": plain, "tta_img_s": tta,
        "stacked_img_s": stacked,
        "precision": accelerator.mixed_precision}, rows,
        "Inference through predict_logits on cached potato images; medians of repeats, run alternately.")


if __name__ == "__main__":
    main()
