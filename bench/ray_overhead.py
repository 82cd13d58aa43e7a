"""What Ray's dispatch costs: the same sweep as ``podium sweep --jobs 2`` (two spawned processes) and as ``--ray``
(a local Ray with two CPUs, one task per grid point), on the digits demo competition, 32 px, test_resnet from
scratch. Ratio = wall of ``--jobs 2`` / wall of ``--ray``: 1.0 means Ray costs nothing more; below 1, what its
start-up and dispatch add. Ray's own start-up (``ray.init``) is timed on its own and included in the Ray wall, as a
``podium sweep --ray`` command pays it.

Each grid point is an ordinary run (``--folds`` folds x ``--epochs`` epochs); ``--points`` grid points (learning
rates). Runs much shorter than the start-up of a process (imports, about 10 s on a loaded 2-core machine) measure
that start-up, for both ways alike.

On a GPU (``--gpu``): the same points packed four per GPU (``--gpus-per-task 0.25``) against one at a time
(``--gpus-per-task 1``), total training images per second of the two.

    flock /tmp/podium-bench.lock env PYTHONPATH=src python -m bench.ray_overhead [--points 4] [--gpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import podium
from bench.common import machine, show, write_results
from podium.demo import build_demo


def sweep_wall(data: Path, root: Path, name: str, points: int, overrides: list[str], **how: Any) -> float:
    """Seconds of one sweep of ``points`` learning rates (``how``: jobs=2, or ray=... and its options)."""
    grid = [f"train.lr={','.join(str(0.001 * (i + 1)) for i in range(points))}"]
    t0 = time.perf_counter()
    table = podium.sweep(data, grid, overrides=[*overrides, f"run.root={root}"], name=name, **how)
    wall = time.perf_counter() - t0
    if not (table["status"] == "done").all():
        raise SystemExit(f"sweep {name} did not finish: {table[['status', 'reason']].to_dict('records')}")
    return wall


def images_per_s(data: Path, root: Path, name: str, points: int, overrides: list[str], folds: int, epochs: int,
                 gpus: float) -> float:
    """Training images per second of all the sweep's runs together, packed ``1 / gpus`` to a GPU (each run trains
    every row ``folds - 1`` times per epoch: once in each fold where it is not validated)."""
    wall = sweep_wall(data, root, name, points, [*overrides, "train.device=cuda"], ray="local", gpus_per_task=gpus,
                      cpus_per_task=gpus)  # the CPUs never the limit: as many tasks as fit on the GPUs
    rows = sum(len(podium.load(p).oof) for p in root.glob(f"{name}-*") if (p / "oof.csv").is_file())
    return rows * (folds - 1) * epochs / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=4)
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--gpu", action="store_true", help="also: 4 packed trials per GPU against 1")
    args = ap.parse_args()
    import ray

    overrides = ["model.name=test_resnet", "model.pretrained=none", "model.img_size=32", f"cv.folds={args.folds}",
                 f"train.epochs={args.epochs}", "train.num_workers=0", "run.report=false", "predict.tta=identity"]
    with tempfile.TemporaryDirectory() as tmp:
        data = build_demo(Path(tmp) / "digits")
        jobs = sweep_wall(data, Path(tmp) / "runs-jobs", "jobs", args.points, overrides, jobs=2)
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        start = time.perf_counter() - t0
        on_ray = start + sweep_wall(data, Path(tmp) / "runs-ray", "ray", args.points, overrides, ray="local",
                                    cpus_per_task=1, gpus_per_task=0)
        result: dict[str, Any] = {"machine": machine(), "points": args.points, "folds": args.folds,
                                  "epochs": args.epochs, "jobs2_wall_s": jobs, "ray_wall_s": on_ray,
                                  "ray_init_s": start, "ratio_jobs2_over_ray": jobs / on_ray}
        rows = [("sweep --jobs 2 wall", f"{jobs:.1f} s"), ("sweep --ray wall (with ray.init)", f"{on_ray:.1f} s"),
                ("ray.init", f"{start:.1f} s"), ("ratio jobs2 / ray", f"{jobs / on_ray:.2f}")]
        if args.gpu:
            shape = (args.folds, args.epochs)
            one = images_per_s(data, Path(tmp) / "runs-gpu1", "gpu1", args.points, overrides, *shape, 1.0)
            four = images_per_s(data, Path(tmp) / "runs-gpu4", "gpu4", args.points, overrides, *shape, 0.25)
            result.update(gpu_one_per_gpu_img_s=one, gpu_four_per_gpu_img_s=four)
            rows += [("1 trial per GPU", f"{one:.0f} img/s"), ("4 trials per GPU", f"{four:.0f} img/s"),
                     ("packing gain", f"{four / one:.2f}x")]
        ray.shutdown()
    show(rows)
    write_results("ray_overhead", result, rows)


if __name__ == "__main__":
    main()
