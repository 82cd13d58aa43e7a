"""What podium export and podium serve give on a real dataset: a short run (tf_efficientnet_lite0, pretrained,
128 px, 2 folds x 2 epochs by default), exported in fp32, fp16 and int8, then

- onnxruntime against torch eager on CPU, batch 1 and 32, images/s, on the same graph (normalisation, 2 folds,
  softmax/sigmoid: ``ExportGraph`` in torch, its export in onnxruntime), both on ``--threads`` threads;
- export time, file size of each precision and its parity (max |p - podium|, label agreement, metric change on
  ``--parity`` OOF images: the fold average, in-sample for the folds that trained on them, identical for both);
- the server under load: ``--requests`` requests of one image each from ``--clients`` concurrent clients on
  127.0.0.1, p50 / p99 latency and throughput, with micro-batching (5 ms window) and without (window 0).

Server and clients share this process (and the GIL), so the server numbers are a floor. With ``--shot PNG`` it also
screenshots the upload page with three predicted images in headless Chromium (Playwright).

    flock /tmp/podium-bench.lock env PYTHONPATH=src python -m bench.export_serve --data potato \
        [--shot docs/images/serve_potato.png]

Writes bench/results/export_serve_<data>.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import DATA, machine, show, write_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def rate(fn, n: int, repeats: int) -> float:
    """Median images/s of ``repeats`` calls of ``fn`` (each handles ``n`` images), after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def speed(graph: torch.nn.Module, onnx: Path, x: np.ndarray, threads: int, repeats: int) -> dict[str, float]:
    """images/s of torch eager and onnxruntime at batch 1 and 32."""
    from podium.deploy.parity import session

    torch.set_num_threads(threads)
    sess = session(onnx, threads)
    out = {}
    for batch in (1, 32):
        xb = x[:batch]
        tb = torch.from_numpy(xb)

        def eager(t: torch.Tensor = tb) -> None:
            with torch.inference_mode():
                graph(t)

        def ort(a: np.ndarray = xb) -> None:
            sess.run(None, {"images": a})

        out[f"torch_b{batch}"] = rate(eager, batch, repeats * (4 if batch == 1 else 1))
        out[f"ort_b{batch}"] = rate(ort, batch, repeats * (4 if batch == 1 else 1))
    return out


def speed_only(args: argparse.Namespace) -> None:
    """``--speed-only``: torch eager against onnxruntime on a 2-fold graph of randomly initialised networks (speed
    does not depend on the weights), at 1 and ``--threads`` threads, alternating the two engines ``--repeats`` times
    so that both see the same background load; no training, no data."""
    import timm

    from podium.data.pixels.preprocessing import Preprocessing
    from podium.deploy.build import to_onnx
    from podium.deploy.graph import ExportGraph, Member, _softmax

    nets = [timm.create_model(args.model, pretrained=False, num_classes=3).eval() for _ in range(args.folds)]
    prep = Preprocessing(args.size, "squash", "bicubic", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    graph = ExportGraph([Member(nets, prep, _softmax)], 3).eval()
    x = np.random.default_rng(0).integers(0, 256, (32, args.size, args.size, 3), dtype=np.uint8)
    info = machine()
    rows, result = [("graph", f"{args.model} {args.size} px x {args.folds} folds, random weights")], {}
    with tempfile.TemporaryDirectory() as tmp:
        onnx = Path(tmp) / "g.onnx"
        to_onnx(graph, (args.size, args.size), onnx)
        for threads in sorted({1, args.threads}):
            rounds = [speed(graph, onnx, x, threads, 3) for _ in range(args.repeats)]
            med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
            result[f"threads_{threads}"] = {"median": med, "rounds": rounds}
            for b in (1, 32):
                rows.append((f"{threads} thread(s), batch {b}: torch eager / ORT img/s",
                             f"{med[f'torch_b{b}']:.1f} / {med[f'ort_b{b}']:.1f} "
                             f"({med[f'ort_b{b}'] / med[f'torch_b{b}']:.2f}x)"))
    rows.append(("load average start / end", f"{info['load_avg_at_start']:.1f} / {os.getloadavg()[0]:.1f}"))
    show(rows)
    note = ("Shared 2-core machine under load from other jobs (load average in the table); medians of alternating "
            "rounds, each a median of 3 timed calls after a warm-up.")
    print(write_results(f"export_speed_{args.model}_{args.size}", {"machine": info, "args": vars(args), **result},
                        rows, note))


def load_test(model: Any, images: list[bytes], clients: int, requests: int, window_ms: float) -> dict[str, float]:
    """Latency percentiles and throughput of ``requests`` one-image requests from ``clients`` clients."""
    import httpx

    import servers
    from podium.serving.app import create_app

    per = requests // clients

    def client(k: int, n: int) -> list[float]:
        out = []
        with httpx.Client(base_url=url, timeout=60) as c:
            for i in range(n):
                t0 = time.perf_counter()
                r = c.post("/predict", files=[("files", ("x.jpg", images[(k * 7 + i) % len(images)], "image/jpeg"))])
                r.raise_for_status()
                assert "error" not in r.json()["results"][0]
                out.append(time.perf_counter() - t0)
        return out

    with servers.running(create_app(model, window_ms=window_ms)) as url, ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda k: client(k, 3), range(clients)))
        t0 = time.perf_counter()
        lat = sorted(t for part in pool.map(lambda k: client(k, per), range(clients)) for t in part)
        wall = time.perf_counter() - t0
        info = httpx.get(f"{url}/info").json()["batching"]
    return {"requests": len(lat), "p50_ms": 1000 * lat[len(lat) // 2], "p99_ms": 1000 * lat[int(len(lat) * 0.99)],
            "req_per_s": len(lat) / wall, "mean_batch": info["images"] / max(info["batches"], 1)}


def screenshot(model: Any, paths: list[str], out: Path) -> None:
    """The upload page after three images, in headless Chromium."""
    import shutil

    from PIL import Image
    from playwright.sync_api import sync_playwright

    import servers
    from podium.serving.app import create_app

    browser_path = shutil.which("chromium")
    if browser_path is None:
        print("no chromium: no screenshot")
        return
    with servers.running(create_app(model)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1000, "height": 560})
        page.goto(url + "/")
        page.set_input_files("#files", paths)
        page.wait_for_function(f"document.querySelectorAll('.result').length === {len(paths)}", timeout=60_000)
        page.wait_for_timeout(300)
        raw = out.with_suffix(".raw.png")
        page.screenshot(path=str(raw))
        browser.close()
    img = Image.open(raw).convert("RGB")
    img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    raw.unlink()
    print(f"screenshot {out} ({out.stat().st_size // 1024} KB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="potato")
    ap.add_argument("--model", default="tf_efficientnet_lite0")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parity", type=int, default=128, help="OOF images of each parity check")
    ap.add_argument("--train-rows", type=int, default=0, help="plant-pathology: a stratified subset of the training "
                                                                 "rows (bench.sweep_ensemble.subset); 0: all")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--shot", default="")
    ap.add_argument("--speed-only", action="store_true", help="torch eager vs onnxruntime only (random weights)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    if args.speed_only:
        speed_only(args)
        return

    import podium
    from podium.data.pixels.images import is_image
    from podium.deploy.build import build_graph, load_source
    from podium.deploy.writer import export_model
    from podium.inference.onnx import OnnxModel
    from podium.inference.resize import load_rgb

    data = DATA / args.data
    info = machine()
    with tempfile.TemporaryDirectory() as tmp:
        if args.train_rows:
            from bench.sweep_ensemble import subset

            data = subset(Path(tmp) / f"{args.data}-subset", args.train_rows, 50)
        t0 = time.perf_counter()
        run = podium.train(data, overrides=[
            f"model.name={args.model}", "model.pretrained=packaged", f"model.img_size={args.size}",
            f"cv.folds={args.folds}", f"train.epochs={args.epochs}", f"train.threads={args.threads}",
            f"run.root={tmp}", "run.report=false", *args.overrides])
        train_s = time.perf_counter() - t0
        exports = {}
        for name, kw in (("fp32", {}), ("fp16", {"fp16": True}), ("int8", {"quantize": "int8"})):
            exports[name] = export_model(run.path, Path(tmp) / f"{name}.onnx", parity_images=args.parity, **kw)
        source = load_source(run.path)
        graph = build_graph(source)
        model32 = OnnxModel(Path(tmp) / "fp32.onnx", args.threads)
        every = sorted(str(p) for p in (DATA / args.data).rglob("*") if is_image(p))
        comp_paths = every[:: max(1, len(every) // 64)]
        x = np.stack([model32.prepare(load_rgb(p)) for p in comp_paths[:32]])
        speeds = {k: speed(graph, Path(tmp) / f"{k}.onnx", x, args.threads, args.repeats) for k in ("fp32", "int8")}
        images = [Path(p).read_bytes() for p in comp_paths[:64]]
        serve = {f"window_{w}ms": load_test(model32, images, args.clients, args.requests, w) for w in (5.0, 0.0)}
        if args.shot:
            screenshot(model32, comp_paths[:3], Path(args.shot))
        cv = f"{run.metrics['metric']} {run.metrics['cv_score']:.4f}"
    s32, s8 = speeds["fp32"], speeds["int8"]
    shown = args.data + (f" ({args.train_rows} training rows)" if args.train_rows else "")
    rows = [("data", shown), ("run", f"{args.model} {args.size} px, {args.folds} folds x {args.epochs} epoch(s), "
                                     f"train {train_s:.0f} s, CV {cv}"),
            ("export s (fp32, torch.onnx dynamo)", f"{exports['fp32']['export_s']:.1f}")]
    for name, r in exports.items():
        p = r["parity"]
        rows.append((f"{name}: MB, max abs diff, labels agree, {p['metric']} change",
                     f"{r['bytes'] / 1e6:.2f} MB, {p['max_abs_diff']:.1e}, {p['label_agreement']:.1%}, "
                     f"{p['metric_change']:+.4f} ({p['images']} OOF imgs)"))
    for b in (1, 32):
        rows.append((f"batch {b}: torch eager / ORT fp32 / ORT int8 img/s",
                     f"{s32[f'torch_b{b}']:.0f} / {s32[f'ort_b{b}']:.0f} / {s8[f'ort_b{b}']:.0f} "
                     f"(ORT fp32 {s32[f'ort_b{b}'] / s32[f'torch_b{b}']:.2f}x)"))
    for name, r in serve.items():
        rows.append((f"serve {name}: p50 / p99 ms, req/s, mean batch",
                     f"{r['p50_ms']:.0f} / {r['p99_ms']:.0f}, {r['req_per_s']:.0f}, {r['mean_batch']:.2f}"))
    load_end = os.getloadavg()[0]
    rows.append(("load average start / end", f"{info['load_avg_at_start']:.1f} / {load_end:.1f}"))
    show(rows)
    note = ("Measured on a shared 2-core machine under load from other jobs (load average in the table): ratios "
            "from one run side by side, absolute numbers are floors. The short run is a benchmark model, not a "
            "good one. Server and clients share one process.")
    result = {"machine": info, "args": vars(args), "train_s": train_s, "cv": cv,
              "exports": {k: {kk: v[kk] for kk in ("bytes", "export_s", "total_s", "parity", "tolerance", "passed")}
                          for k, v in exports.items()},
              "speed": speeds, "serve": serve, "load_avg_end": load_end}
    print(write_results(f"export_serve_{args.data}", result, rows, note))


if __name__ == "__main__":
    main()
