"""Kaggle code competitions: pack size, offline install time and CPU prediction throughput of ``podium pack`` /
``predict --data``, for a 5-fold lite0 run and a 3-run ensemble, and the effect of fp16 weights on the OOF score.

A Kaggle-like competition folder is made from potato (train.csv + symlinked images, a test set with its sample
submission; nothing is copied). Three 5-fold tf_efficientnet_lite0 runs are trained briefly (pretrained weights,
``--epochs``) and blended. For the run and the ensemble:

- pack size: the wheels (podium + the dependencies Kaggle's image lacks, from PyPI) and the slimmed models, fp32 and
  fp16;
- offline install: a fresh virtual environment whose base packages (torch, numpy, ...) are this environment's but
  without podium and without the packed dependencies, timed over ``pip install --no-index --find-links``;
- prediction throughput on CPU, images/s over the test set, each measurement from an empty image cache:
  ``podium predict RUN`` (the run's own data folder) against ``predict --data`` of the same run in this process,
  and the pack's ``predict.py`` in the fresh environment (process start and imports included);
- fp16: each fold's OOF rows predicted by its fp32 and its fp16 checkpoint (same path, same TTA), scored side by side.

    python -m bench.kaggle [--train 300] [--test 150] [--size 128] [--epochs 1] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import machine, potato, show, write_results


def make_competition(root: Path, n_train: int, n_test: int) -> Path:
    """train.csv / train_images / test_images / sample_submission.csv from potato, images symlinked."""
    files = sorted(p for p in potato().rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    pick = np.random.default_rng(0).permutation(len(files))
    rows = []
    for k, i in enumerate(pick[: n_train + n_test]):
        src = files[i]
        split = "train_images" if k < n_train else "test_images"
        name = f"{'img' if k < n_train else 'hid'}{k:05d}{src.suffix.lower()}"
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / split / name).symlink_to(src)
        rows.append((split, Path(name).stem, src.parent.name))
    table = pd.DataFrame(rows, columns=["split", "image_id", "label"])
    table[table.split == "train_images"][["image_id", "label"]].to_csv(root / "train.csv", index=False)
    test = table[table.split == "test_images"][["image_id"]].assign(label="Potato___healthy")
    test.to_csv(root / "sample_submission.csv", index=False)
    return root


def folder_bytes(path: Path) -> int:
    """Bytes of every file below ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def fresh_venv(where: Path, leave_out: set[str]) -> Path:
    """A venv whose packages are this environment's (linked one by one) minus podium and ``leave_out`` (the
    dependencies the pack brings as wheels): the notebook's base image. Returns its python."""
    from importlib import metadata

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    skip = set()
    for name in {*leave_out, "podium"}:
        skip |= {f.parts[0] for f in metadata.distribution(name).files or []}
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if entry.name not in skip and "podium" not in entry.name.lower():
            (site / entry.name).symlink_to(entry)
    return python


def timed(fn, *args, **kwargs) -> tuple[float, object]:  # noqa: ANN001
    """Seconds taken by ``fn(*args, **kwargs)``, and its result."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def fp16_effect(run_dir: Path, half_dir: Path) -> dict[str, float]:
    """OOF scores of the run's fp32 and fp16 checkpoints on each fold's validation rows (same path, same TTA)."""
    import podium
    from podium.config import TrainConfig
    from podium.engine.accel import make_accelerator
    from podium.inference.checkpoints import predict_checkpoints
    from podium.tasks.metrics import score

    run, half = podium.load(run_dir), podium.load(half_dir)
    folds = run.folds_table
    comp_paths = {}
    data = Path(run.info["data_dir"])
    for p in (data / "train_images").iterdir():
        comp_paths[p.stem] = str(p)
    accelerator = make_accelerator(TrainConfig(device="cpu", precision="no"))
    full, small, ys = [], [], []
    task = run.load_best(0).resolved_task()
    classes = list(run.load_best(0).classes)
    for fold in run.folds_done():
        rows = folds[folds["fold"] == fold]
        ids, paths = rows["id"].tolist(), [comp_paths[i] for i in rows["id"]]
        full.append(predict_checkpoints([run.load_best(fold)], ids, paths, accelerator).probs)
        small.append(predict_checkpoints([half.load_best(fold)], ids, paths, accelerator).probs)
        ys.append(task.from_labels([[s] for s in rows["label"].astype(str)], classes))
    y, p32, p16 = np.concatenate(ys), np.concatenate(full), np.concatenate(small)
    s32, s16 = score(task, y, p32, decisions=run.decisions), score(task, y, p16, decisions=run.decisions)
    return {"fp32": s32, "fp16": s16, "max_abs_prob_diff": float(np.abs(p32 - p16).max()),
            "labels_changed": int((p32.argmax(1) != p16.argmax(1)).sum()), "rows": int(len(y))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=300)
    ap.add_argument("--test", type=int, default=150)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reuse", default="", help="work folder of an earlier, failed call: its runs are not retrained")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    import podium
    from podium.inference.members import predict_data
    from podium.inference.run import predict_run

    work = Path(args.reuse) if args.reuse else Path(tempfile.mkdtemp(prefix="podium-kaggle-bench-"))
    os.environ["PODIUM_CACHE"] = str(work / "cache0")
    comp = work / "comp" if args.reuse else make_competition(work / "comp", args.train, args.test)
    base = [f"model.img_size={args.size}", f"train.epochs={args.epochs}", "cv.folds=5", f"train.threads={args.threads}",
            "train.batch_size=32", "finetune.freeze_epochs=0", "run.report=false", f"run.root={work / 'runs'}",
            "train.device=cpu"]
    t_train = time.perf_counter()
    variants = (("lite0", []), ("lite0-crop", ["model.resize=crop"]), ("lite0-seed", ["train.seed=1"]))
    if args.reuse:
        runs = [next((work / "runs").glob(f"{name}-2*")) for name, _ in variants]
        ens = next((work / "runs").glob("ens-*"))
        for old in work.glob("pack-*"):
            shutil.rmtree(old)
        for old in [*work.glob("venv-*"), *work.glob("cache-*")]:
            shutil.rmtree(old)
    else:
        runs = [podium.train(comp, overrides=[*base, f"run.name={name}", *extra]).path for name, extra in variants]
        ens = podium.ensemble(*runs, blend="weights", name="ens").path
    t_train = None if args.reuse else time.perf_counter() - t_train
    result, rows = {"machine": machine("cpu"), "args": vars(args), "train_s_three_runs": t_train}, []
    for label, folder in (("5-fold lite0 run", runs[0]), ("3-run ensemble", ens)):
        key = "run" if folder == runs[0] else "ensemble"
        pk, half = work / f"pack-{key}", work / f"pack-{key}-fp16"
        t_pack, info = timed(podium.pack, folder, out=pk)
        podium.pack(folder, out=half, fp16=True)
        venv = fresh_venv(work / f"venv-{key}", set(info["dependency_wheels"]))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
        t_install, _ = timed(subprocess.run, [str(venv), "-m", "pip", "install", "--no-index", "--find-links",
                                              str(pk / "wheels"), "podium", "-q", "--disable-pip-version-check"],
                             check=True, env=env)
        # throughput, each from an empty decoded-image cache
        os.environ["PODIUM_CACHE"] = str(work / f"cache-{key}-a")
        if key == "run":
            t_own, _ = timed(predict_run, folder)  # podium predict RUN: its own data folder, into the run folder
        else:
            t_own = None
        os.environ["PODIUM_CACHE"] = str(work / f"cache-{key}-b")
        t_data, _ = timed(predict_data, folder, comp, work / f"sub-{key}.csv", device="cpu")
        env["PODIUM_CACHE"] = str(work / f"cache-{key}-c")
        t_script, _ = timed(subprocess.run, [str(venv), str(pk / "predict.py"), "--data", str(comp), "--out",
                                             str(work / f"sub-{key}-pack.csv"), "--device", "cpu"], check=True,
                            env=env, capture_output=True)
        same = (work / f"sub-{key}.csv").read_bytes() == (work / f"sub-{key}-pack.csv").read_bytes()
        models = folder_bytes(pk / "models")
        entry = {"pack_bytes": folder_bytes(pk), "wheels_bytes": folder_bytes(pk / "wheels"), "models_bytes": models,
                 "models_fp16_bytes": folder_bytes(half / "models"), "dependency_wheels": info["dependency_wheels"],
                 "pack_s": t_pack, "offline_install_s": t_install, "predict_data_s": t_data,
                 "predict_py_s": t_script, "podium_predict_run_s": t_own, "test_images": args.test,
                 "pack_submission_equals_in_process": same}
        result[key] = entry
        mib = 2**20
        rows += [(f"{label}: pack size (wheels + models)", f"{entry['pack_bytes'] / mib:.1f} MiB "
                  f"({entry['wheels_bytes'] / mib:.1f} + {models / mib:.1f}); models fp16 "
                  f"{entry['models_fp16_bytes'] / mib:.1f} MiB"),
                 (f"{label}: offline install (pip --no-index, {1 + len(info['dependency_wheels'])} wheels)",
                  f"{t_install:.1f} s"),
                 (f"{label}: predict --data, in process", f"{args.test / t_data:.1f} images/s"),
                 (f"{label}: pack's predict.py in the fresh venv (with start-up)",
                  f"{args.test / t_script:.1f} images/s (same submission: {same})")]
        if t_own is not None:
            rows.append((f"{label}: podium predict RUN (own data folder)", f"{args.test / t_own:.1f} images/s; "
                         f"predict --data / podium predict = {t_own / t_data:.2f}x"))
    fx = fp16_effect(runs[0], work / "pack-run-fp16" / "models" / runs[0].name)
    result["fp16_oof"] = fx
    metric = podium.load(runs[0]).metrics["metric"]
    rows.append((f"fp16 weights, OOF {metric} (5-fold lite0, {fx['rows']} rows)",
                 f"fp32 {fx['fp32'][metric]:.4f} vs fp16 {fx['fp16'][metric]:.4f}; log_loss "
                 f"{fx['fp32'].get('log_loss', float('nan')):.5f} vs {fx['fp16'].get('log_loss', float('nan')):.5f}; "
                 f"max |dp| {fx['max_abs_prob_diff']:.2e}, labels changed {fx['labels_changed']}"))
    show(rows)
    note = (f"Potato subset: {args.train} training images (5 folds, {args.epochs} epoch(s), {args.size} px, "
            f"pretrained lite0), {args.test} test images. CPU only, torch threads {args.threads}, measured on a "
            "2-core machine shared with other jobs: absolute rates are low and noisy; compare within this table. "
            "Each prediction starts from an empty decoded-image cache.")
    print(write_results("kaggle", json.loads(json.dumps(result, default=str)), rows, note))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
