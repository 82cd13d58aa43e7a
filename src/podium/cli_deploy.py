"""The commands that take models out of a run: ``export`` (ONNX), ``serve`` (HTTP), ``merge`` (folds trained apart)
and ``pack`` (an offline Kaggle notebook). Plain functions, registered on podium.cli's app; like every command they
parse, call one ``podium.api`` function and print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from podium.cli_tables import console

# A run folder may come from someone else: the user metric its config names runs only when named again here.
TrustMetric = Annotated[str, typer.Option("--metric", help="The saved runs' user metric (module:function), named "
                                                           "to trust it: a user metric of a run folder runs only "
                                                           "when named here.")]


def export(
    folder: Annotated[Path, typer.Argument(help="Run or ensemble folder.")],
    out: Annotated[Optional[Path], typer.Option(help="ONNX file (default: FOLDER/export/model.onnx); a bundle folder "
                                                     "for an ensemble of mixed preprocessing (default: "
                                                     "FOLDER/export/bundle).")] = None,
    folds: Annotated[str, typer.Option(help="all (fold average inside the graph) or one fold number.")] = "all",
    tta: Annotated[bool, typer.Option("--tta/--no-tta", help="The run's TTA views (predict.tta, predict.scales) "
                                                               "inside the graph, so it answers as podium predict "
                                                               "does (default); --no-tta: the plain image only. "
                                                               "--tta is kept for old scripts.")] = True,
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 18,
    fp16: Annotated[bool, typer.Option("--fp16", help="float16 weights and activations (uint8 in, float32 out).")]
    = False,
    quantize: Annotated[str, typer.Option(help="int8: dynamic quantisation (its metric change is reported).")] = "",
    layout: Annotated[str, typer.Option(help="Input layout: nhwc (N, H, W, 3) or nchw (N, 3, H, W), uint8 RGB.")]
    = "nhwc",
    metric: TrustMetric = "",
) -> None:
    """Write one ONNX graph (uint8 images in, podium's probabilities out; normalisation, fold average, TTA and the
    task's decoding inside) and check it against podium on OOF images (export.json); fails on a parity miss. An
    ensemble whose members prepare images differently becomes a bundle: a graph per preprocessing + bundle.json."""
    from podium.api import export as run

    r = run(folder, out, folds, tta, opset, fp16, quantize, layout, metric=metric)
    p = r["parity"]
    console(soft_wrap=True).print(
        f"wrote {r['path']} ({r['bytes'] / 1e6:.1f} MB, {r['precision']}, {r['export_s']:.0f} s): max |p - podium| "
        f"{p['max_abs_diff']:.1e} on {p['images']} OOF images, labels agree {p['label_agreement']:.1%}, "
        f"{p['metric']} {p['metric_onnx']:.4f} (podium {p['metric_podium']:.4f}); "
        + (f"a bundle of {len(r['graphs'])} graphs: " + ", ".join(
            f"{g['input']['size']} {g['input']['resize']} ({'+'.join(g['tta']['views'])})" for g in r["graphs"])
           if r.get("bundle")
           else f"TTA views {'+'.join(r['tta_views'])}"))
    if r.get("predict_differs"):
        console(soft_wrap=True).print(r["predict_differs"]["note"])


def serve(
    target: Annotated[Path, typer.Argument(help="ONNX file or bundle folder from podium export, or a run or "
                                                "ensemble folder.")],
    host: Annotated[str, typer.Option(help="Address to listen on; any but localhost needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    token: Annotated[Optional[str], typer.Option(help="API token (or PODIUM_TOKEN); clients send "
                                                      "'Authorization: Bearer TOKEN'.")] = None,
    max_images: Annotated[int, typer.Option(help="Images per request (more: 413).")] = 16,
    max_mb: Annotated[float, typer.Option(help="Request body in MB (more: 413).")] = 20.0,
    max_mpx: Annotated[float, typer.Option(help="Megapixels an image header may claim (more: 413).")] = 40.0,
) -> None:
    """Serve the model: an upload page at /, POST /predict (multipart images or JSON base64), /health, /ready (warmed
    up), /info and /metrics (Prometheus)."""
    from podium.api import serve as run

    run(target, host, port, token, max_images, max_mb, max_mpx)


def merge(
    runs: Annotated[list[Path], typer.Argument(help="Run folders of one config that trained different cv.train_folds.",
                                               show_default=False)],
    out: Annotated[Path, typer.Option(help="The merged run folder (new).")],
    data: Annotated[Optional[Path], typer.Option(help="Competition folder, when not at the runs' path here.")] = None,
    metric: TrustMetric = "",
) -> None:
    """Combine runs that trained different folds (separate machines or notebook sessions) into one finished run:
    OOF, decisions, metrics and submission as if it had been trained in one go."""
    from podium.api import merge as run

    merged = run(*runs, out=out, data=data, metric=metric)
    m = merged.metrics
    console().print(f"merged {len(runs)} runs into {merged.path}: CV {m['metric']} {m['cv_score']:.4f}")


def pack(
    folders: Annotated[list[Path], typer.Argument(help="Run or ensemble folders to pack.", show_default=False)],
    out: Annotated[Path, typer.Option(help="The folder to upload as a Kaggle dataset (new).")],
    base: Annotated[Optional[Path], typer.Option(help="Requirements or `pip freeze` file of the notebook's "
                                                      "environment; its packages are not packed (default: Kaggle's "
                                                      "image, see docs/KAGGLE.md).")] = None,
    fp16: Annotated[bool, typer.Option(help="Store the weights in half precision (half the size).")] = False,
    dataset: Annotated[str, typer.Option(help="The Kaggle dataset name, used in the notebook cell.")] = "podium-pack",
    python_version: Annotated[str, typer.Option(help="The notebook's Python (e.g. 3.11) when it differs from this "
                                                     "one's.")] = "",
    platform: Annotated[str, typer.Option(help="The notebook's wheel platform (e.g. manylinux2014_x86_64) when it "
                                               "differs from this machine's.")] = "",
) -> None:
    """Pack runs or ensembles for a Kaggle code competition: wheels for an offline pip install, slimmed checkpoints,
    predict.py and the notebook cell."""
    from podium.api import pack as run

    info = run(*folders, out=out, base=base, fp16=fp16, dataset=dataset, python_version=python_version,
               platform=platform)
    console().print(f"wrote {out}: {', '.join(info['models'])}; {1 + len(info['dependency_wheels'])} wheel(s), "
                    f"{sum(info['bytes'].values()) / 2**20:.1f} MiB{' (fp16 weights)' if info['fp16'] else ''}")
