"""Competition-scale data: first-run preparation against the decode limit and the old two-pass code, inspect cold and
cached, the near-duplicate search at 20k and 100k hashes, peak RSS at 20k and 100k rows, cache disk use and decode
cost per format, and loader-only throughput per core at 224 px.

    PYTHONPATH=src python -m bench.make_large --out bench/large/pp20k --count 20000     # the 20k set, once
    PYTHONPATH=src python -m bench.large_data --data bench/large/pp20k [--only prep,inspect,hashes,rss,formats,loader]

Sections (``--only`` picks some; each merges its results into bench/results/large_data.json and .md):

- prep: one reduced JPEG decode per image on all cores (the limit: threads, file read + ``cv2.imdecode`` at the scale
  the first pass uses), podium's first pass (checks, hashes and the cache at ``--size`` from one decode per image,
  fresh caches), and the old code (``--old-src``, default ../main/src: a full decode for the checks, then another
  for the cache) in a child process with fresh caches. The files are read once beforehand, so the disk is out.
- inspect: ``podium inspect`` as a child process, with an empty cache (cold), then again (cached).
- hashes: ``near_pairs`` and ``find_clusters`` on 20k and 100k synthetic pHashes, uniform and clustered (5% centres,
  6 random bit flips each): seconds and traced peak memory.
- rss: peak RSS of a child process that prepares a run (ingest, checks, duplicates, folds), builds fold 0 (cache,
  datasets, loaders) and loads its first batch, on a CSV of ``--rows`` ids symlinked to the shared
  plant-pathology-2021-mini images (many ids per file, as in the issue). Not a full epoch: the training loop's
  memory depends on the batch, not on the rows.
- formats: on ``--format-images`` images of the set, each cache format at the cache side of 224 and 384 px models:
  bytes per image (and projected to the set), encode and decode microseconds per image on one core.
- loader: training-dataset items per second on one core (torch and cv2 single-threaded) from the raw and the jpeg
  cache at 224 px, and the cores needed to feed 2,100, 3,000 and 8,000 img/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, machine, show

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT.parent / "shared" / "datasets" / "plant-pathology-2021-mini"
GPU_RATES = {"tf_efficientnet_lite0 on an RTX 3090 (timm, AMP, channels_last)": 2100, "H100, low end": 3000,
             "H100, high end": 8000}


def image_paths(data: Path, limit: int = 0) -> list[str]:
    paths = sorted(str(p) for d in ("train_images", "test_images") for p in (data / d).glob("*.jpg"))
    return paths[:limit] if limit else paths


def warm(paths: list[str]) -> None:
    """Read every file once so that the OS page cache holds them (the benches measure decoding, not the disk)."""
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda p: Path(p).read_bytes().__len__(), paths))


def section_prep(args: argparse.Namespace) -> dict[str, Any]:
    from podium.data.pixels.cache import StoreFiller, cache_side
    from podium.data.pixels.checks import PHASH_SIDE, check_files
    from podium.data.pixels.images import decode_image, read_header, reduction

    paths = image_paths(args.data, args.images)
    warm(paths)
    side = cache_side(args.size, 1.25)
    cores = os.cpu_count() or 1

    def reduced(path: str) -> int:
        data = np.fromfile(path, dtype=np.uint8)
        head = read_header(data[: 1 << 16])
        return decode_image(data, reduction(head.width, head.height, max(PHASH_SIDE, side))).shape[0]

    def limit() -> float:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(cores) as pool:
            list(pool.map(reduced, paths, chunksize=16))
        return time.perf_counter() - t0

    def first_pass() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["PODIUM_CACHE"] = tmp
            t0 = time.perf_counter()
            with StoreFiller(paths, side, tmp) as filler:
                table = check_files(paths, sink=filler)
            took = time.perf_counter() - t0
            assert table["error"].isna().all() and not filler.missing()
        return took

    def old_code() -> float | None:
        script = ("import sys, time; from podium.data.pixels.checks import check_files; "
                  "from podium.data.pixels.cache import build_cache; paths = sys.argv[2:]; side = int(sys.argv[1]); "
                  "t0 = time.perf_counter(); check_files(paths); build_cache(paths, side); "
                  "print(time.perf_counter() - t0)")
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "PYTHONPATH": str(args.old_src), "PODIUM_CACHE": tmp}
            out = subprocess.run([sys.executable, "-c", script, str(side), *paths], env=env, check=False,
                                 capture_output=True, text=True, cwd=tmp)
        if out.returncode:  # say why, and keep the other numbers of the section
            print(f"prep: the old code failed ({out.returncode}): {out.stderr.strip()[-2000:]}", flush=True)
            return None
        return float(out.stdout.strip().splitlines()[-1])

    limits, news = [], []
    for _ in range(args.repeats):  # alternately, so that a change in the machine's load hits both
        limits.append(limit())
        news.append(first_pass())
        print(f"prep: limit {limits[-1]:.1f} s, first pass {news[-1]:.1f} s", flush=True)
    old = old_code() if args.old_src.is_dir() else None
    lim, new = statistics.median(limits), statistics.median(news)
    print(f"prep: limit {limits} s, first pass {news} s, old two-pass {old} s", flush=True)
    return {"images": len(paths), "cache_side": side, "cores": cores, "limit_s": limits, "first_pass_s": new,
            "first_pass_all_s": news, "old_two_pass_s": old, "ratio_limit_over_first_pass": lim / new,
            "first_pass_over_old": None if old is None else new / old,
            "old_commit": git_commit(args.old_src)}


def git_commit(src: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def section_inspect(args: argparse.Namespace) -> dict[str, Any]:
    warm(image_paths(args.data))
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PODIUM_CACHE": tmp, "PYTHONPATH": str(ROOT / "src")}
        for label in ("cold", "cached"):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "podium", "inspect", str(args.data), "--out", f"{tmp}/out-{label}",
                            f"run.root={tmp}/runs"], env=env, check=True, capture_output=True, cwd=tmp)
            times[label] = time.perf_counter() - t0
    print(f"inspect: {times}", flush=True)
    return {"images": len(image_paths(args.data)), **{f"{k}_s": v for k, v in times.items()}}


def synthetic_hashes(n: int, clustered: bool, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2) + rng.integers(0, 2, n).astype(
        np.uint64)
    if not clustered:
        return h
    centres = h[: max(1, n // 20)]
    out = centres[rng.integers(0, len(centres), n)]
    for _ in range(6):
        out = out ^ (np.uint64(1) << rng.integers(0, 64, n).astype(np.uint64))
    return out


def section_hashes(args: argparse.Namespace) -> dict[str, Any]:
    from podium.data.pixels.duplicates import find_clusters, near_pairs

    out = {}
    for n in (20_000, 100_000):
        for clustered in (False, True):
            h = synthetic_hashes(n, clustered)
            sha = [f"{i:040x}" for i in range(n)]
            tracemalloc.start()
            t0 = time.perf_counter()
            a, _ = near_pairs(np.unique(h), 3)
            pairs_s = time.perf_counter() - t0
            pairs_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            t0 = time.perf_counter()
            cluster, _ = find_clusters(sha, h, 3)
            clusters_s = time.perf_counter() - t0
            clusters_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            key = f"{n}_{'clustered' if clustered else 'uniform'}"
            out[key] = {"near_pairs_s": pairs_s, "near_pairs_peak_mb": pairs_peak / 1e6, "pairs": int(len(a)),
                        "find_clusters_s": clusters_s, "find_clusters_peak_mb": clusters_peak / 1e6,
                        "clusters_with_dups": int((np.bincount(cluster) > 1).sum())}
            print(f"hashes {key}: {out[key]}", flush=True)
    return out


RSS_CHILD = r"""
import resource, sys, time
from podium.config import load_config
from podium.pipeline import plan_run
from podium.engine.accel import make_accelerator
from podium.engine.fold import build_fold
from podium.validation import validate
cfg = validate(load_config(None, sys.argv[2:]))  # plan_run takes a checked config
t0 = time.perf_counter()
plan = plan_run(sys.argv[1], cfg, None)
prep_s = time.perf_counter() - t0
parts = build_fold(0, plan.comp, plan.folds, plan.cfg, make_accelerator(plan.cfg.train))
next(iter(parts.train_loader))
print(prep_s, time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def rows_folder(root: Path, rows: int) -> Path:
    """A CSV layout of ``rows`` ids, each a symlink to one of the mini's images (labels follow the image)."""
    import pandas as pd

    src = pd.read_csv(MINI / "train.csv")
    folder = root / f"rows-{rows}"
    images = folder / "train_images"
    images.mkdir(parents=True, exist_ok=True)
    pick = np.arange(rows) % len(src)
    ids = [f"r{i:06d}.jpg" for i in range(rows)]
    for name, j in zip(ids, pick):
        link = images / name
        if not link.exists():
            link.symlink_to(MINI / "train_images" / src["image"].iloc[j])
    pd.DataFrame({"image": ids, "labels": src["labels"].to_numpy()[pick]}).to_csv(folder / "train.csv", index=False)
    return folder


def section_rss(args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            folder = rows_folder(Path(tmp), rows)
            env = {**os.environ, "PODIUM_CACHE": f"{tmp}/cache", "PYTHONPATH": str(ROOT / "src")}
            overrides = ["model.name=test_resnet", "model.pretrained=none", "model.img_size=32", "cv.folds=5",
                         f"run.root={tmp}/runs", "train.num_workers=0", "train.threads=1"]
            res = subprocess.run([sys.executable, "-c", RSS_CHILD, str(folder), *overrides], env=env,
                                 capture_output=True, text=True, cwd=tmp)
            if res.returncode:
                raise SystemExit(res.stderr[-2000:])
            prep_s, total_s, rss_kb = res.stdout.strip().splitlines()[-1].split()
            out[str(rows)] = {"prepare_s": float(prep_s), "to_first_batch_s": float(total_s),
                              "peak_rss_mb": int(rss_kb) / 1024}
            print(f"rss {rows} rows: {out[str(rows)]}", flush=True)
    return out


def section_formats(args: argparse.Namespace) -> dict[str, Any]:
    import cv2

    from podium.data.pixels.cache import cache_side, shrink
    from podium.data.pixels.cache_formats import CACHE_FORMATS
    from podium.data.pixels.images import read_reduced

    cv2.setNumThreads(1)
    paths = image_paths(args.data, args.format_images)
    total = len(image_paths(args.data))
    out: dict[str, Any] = {"images": len(paths), "set_images": total}
    for size in (224, 384):
        side = cache_side(size, 1.25)
        imgs = []
        for p in paths:
            img, full = read_reduced(p, side)
            imgs.append(shrink(img, side, full))
        for name in CACHE_FORMATS:
            fmt = CACHE_FORMATS.get(name)
            t0 = time.perf_counter()
            blobs = [fmt.encode(i) for i in imgs]
            enc = (time.perf_counter() - t0) / len(imgs)
            dec = []
            for _ in range(2):
                t0 = time.perf_counter()
                for b, i in zip(blobs, imgs):
                    fmt.decode(b, i.shape[0], i.shape[1])
                dec.append((time.perf_counter() - t0) / len(imgs))
            per = sum(len(b) for b in blobs) / len(blobs)
            out[f"{size}_{name}"] = {"cache_side": side, "bytes_per_image": per, "gb_for_set": per * total / 1e9,
                                     "gb_for_20k": per * 20_000 / 1e9, "encode_us": enc * 1e6,
                                     "decode_us": min(dec) * 1e6}
            print(f"format {size} px {name}: {out[f'{size}_{name}']}", flush=True)
    return out


def section_loader(args: argparse.Namespace) -> dict[str, Any]:
    import cv2
    import torch

    from podium.config import load_config
    from podium.data.pixels.cache import build_cache, cache_side
    from podium.data.training.dataset import ImageDataset
    from podium.data.training.transforms import create_transform
    from podium.models.factory import create_model, resolve_preprocessing

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    paths = image_paths(args.data, args.format_images)
    cfg = load_config(None, ["model.name=tf_efficientnet_lite0", "model.pretrained=none", "model.img_size=224"])
    prep = resolve_preprocessing(create_model(cfg.model, 6), cfg.model)
    out: dict[str, Any] = {"images": len(paths)}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("raw", "jpeg"):
            images = build_cache(paths, cache_side(224, 1.25), tmp, fmt=fmt)
            ds = ImageDataset(paths, np.zeros(len(paths), np.int64), create_transform(prep, cfg.aug, train=True),
                              images, seed=0)
            rates = []
            for epoch in range(3):
                t0 = time.perf_counter()
                for i in range(len(ds)):
                    ds[epoch * len(ds) + i]
                rates.append(len(ds) / (time.perf_counter() - t0))
            best = max(rates[1:])  # the first pass warms the page cache and the allocator
            out[fmt] = {"img_s_per_core": best, "rates": rates,
                        "cores_needed": {k: v / best for k, v in GPU_RATES.items()}}
            print(f"loader {fmt}: {out[fmt]}", flush=True)
    return out


SECTIONS = {"prep": section_prep, "inspect": section_inspect, "hashes": section_hashes, "rss": section_rss,
            "formats": section_formats, "loader": section_loader}


def rows_md(result: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    if "prep" in result:
        p = result["prep"]
        rows += [("first-run preparation (checks, hashes, cache; one decode per image)",
                  f"{p['first_pass_s']:.1f} s for {p['images']} images, cache side {p['cache_side']} (median of "
                  f"{[round(v, 1) for v in p.get('first_pass_all_s', [p['first_pass_s']])]})"),
                 ("decode limit (one reduced decode per image, all cores)", f"{statistics.median(p['limit_s']):.1f} s"
                  f" {[round(v, 1) for v in p['limit_s']]}"),
                 ("ratio limit / first pass (target >= 0.8)", f"{p['ratio_limit_over_first_pass']:.2f}")]
        if p.get("old_two_pass_s"):
            rows.append(("old two-pass code (full decode for checks, again for the cache)",
                         f"{p['old_two_pass_s']:.1f} s ({p['old_two_pass_s'] / p['first_pass_s']:.2f}x the new; "
                         f"commit {p['old_commit']})"))
    if "inspect" in result:
        i = result["inspect"]
        rows.append(("podium inspect cold / cached", f"{i['cold_s']:.1f} s / {i['cached_s']:.1f} s "
                                                     f"({i['images']} images)"))
    for k, v in result.get("hashes", {}).items():
        if not isinstance(v, dict):
            continue
        rows.append((f"near duplicates, {k} hashes", f"near_pairs {v['near_pairs_s']:.2f} s, "
                     f"{v['near_pairs_peak_mb']:.1f} MB; find_clusters {v['find_clusters_s']:.2f} s, "
                     f"{v['find_clusters_peak_mb']:.1f} MB"))
    for k, v in result.get("rss", {}).items():
        if not isinstance(v, dict):
            continue
        rows.append((f"peak RSS, {k} rows (prepare + fold 0 + first batch)",
                     f"{v['peak_rss_mb']:.0f} MB (prepare {v['prepare_s']:.1f} s, first batch at "
                     f"{v['to_first_batch_s']:.1f} s)"))
    f = result.get("formats", {})
    for k, v in f.items():
        if isinstance(v, dict):
            rows.append((f"cache {k.replace('_', ' px ')} (side {v['cache_side']})",
                         f"{v['bytes_per_image'] / 1e3:.0f} KB/image, {v['gb_for_20k']:.2f} GB at 20k; encode "
                         f"{v['encode_us']:.0f} us, decode {v['decode_us']:.0f} us"))
    for fmt, v in result.get("loader", {}).items():
        if isinstance(v, dict):
            need = ", ".join(f"{r}: {c:.1f}" for r, c in zip(GPU_RATES.values(), v["cores_needed"].values()))
            rows.append((f"loader from the {fmt} cache at 224 px, one core", f"{v['img_s_per_core']:.0f} img/s; "
                         f"cores for {need} img/s"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--images", type=int, default=0, help="prep: the first N images (0: all)")
    ap.add_argument("--size", type=int, default=224, help="prep: the model input size (cache side x1.25)")
    ap.add_argument("--old-src", type=Path, default=ROOT.parent / "main" / "src")
    ap.add_argument("--rows", type=int, nargs="+", default=[20_000, 100_000])
    ap.add_argument("--format-images", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3, help="prep: alternating limit / first-pass pairs")
    ap.add_argument("--name", default="large_data")
    args = ap.parse_args()
    args.data = args.data.resolve()  # child processes run in other folders
    path = RESULTS / f"{args.name}.json"
    result = json.loads(path.read_text()) if path.is_file() else {}
    result.setdefault("machine", machine())
    result["data"] = str(args.data)
    for name in args.only.split(","):
        result[name] = SECTIONS[name](args)
        result[name]["when"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        result[name]["load_avg"] = os.getloadavg()[0]
        result[name]["data"] = str(args.data)  # sections run at different times may have used different sets
        RESULTS.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    rows = rows_md(result)
    show(rows)
    m = result["machine"]
    md = [f"# {args.name}", "", f"{m['cpu']} ({m['cores']} cores); per section, the data and the load average at its "
          "end: " + "; ".join(f"{k} {Path(str(result[k].get('data', result['data']))).name} "
                              f"{result[k]['load_avg']:.1f}" for k in SECTIONS if k in result) + ".",
          "", "| quantity | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], ""]
    (RESULTS / f"{args.name}.md").write_text("\n".join(md))


if __name__ == "__main__":
    main()
