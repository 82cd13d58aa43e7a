"""``export_model``: ``podium export RUN_OR_ENSEMBLE`` from top to bottom.

The graph is built, exported, converted to the asked precision, given its metadata and checked for parity in a
temporary folder beside the destination; only a graph that passes (or an int8 one, whose change is reported) is moved
into place, with its report ``export.json``, so a failed export leaves nothing behind. The defaults live in the run
(or ensemble) folder: ``export/model.onnx`` and ``export/export.json`` (``Run.onnx_path``, ``Run.export_report_path``);
with ``out=FILE`` the report is ``FILE`` with the suffix ``.export.json``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from podium.core.errors import PodiumError
from podium.core.io import write_json
from podium.deploy.build import DEFAULT_OPSET, LAYOUTS, build_graph, load_source, metadata, to_onnx, write_metadata
from podium.deploy.parity import PRECISIONS, cache_side_of, check_parity, parity_data
from podium.inference.resize import METADATA_KEY
from podium.runs.ensemble import open_folder

PARITY_IMAGES = 64


def precision_of(fp16: bool, quantize: str) -> str:
    """The registered precision the flags ask for (``--fp16``, ``--quantize int8``)."""
    if fp16 and quantize:
        raise PodiumError("--fp16 and --quantize are alternatives; give one of them.")
    name = quantize or ("fp16" if fp16 else "fp32")
    if name not in PRECISIONS or name in ("fp32", "fp16") and quantize:
        raise PodiumError(f"--quantize {quantize}: choose int8.")
    return name


def export_model(folder: str | Path, out: str | Path | None = None, folds: str = "all", tta: bool = False,
                 opset: int = DEFAULT_OPSET, fp16: bool = False, quantize: str = "", layout: str = "nhwc",
                 parity_images: int = PARITY_IMAGES) -> dict[str, Any]:
    """Export a run or ensemble folder to one ONNX graph and check it against podium; returns the report (also
    written to ``export.json``) with ``path``, the graph's file."""
    precision = precision_of(fp16, quantize)
    if layout not in LAYOUTS:
        raise PodiumError(f"--layout {layout}: choose from {', '.join(LAYOUTS)}.")
    if not 6 <= opset <= 23:
        raise PodiumError(f"--opset {opset}: give an ONNX opset between 6 and 23 (default {DEFAULT_OPSET}).")
    t0 = time.perf_counter()
    source = load_source(folder, folds)
    owner = open_folder(source.folder.path)
    target = Path(out).expanduser().resolve() if out else owner.onnx_path
    report_path = target.with_suffix(".export.json") if out else owner.export_report_path
    if target.exists() and target.is_dir():
        raise PodiumError(f"--out {target} is a folder; give a file name such as model.onnx.")
    graph = build_graph(source, tta, layout)
    data = parity_data(source, parity_images, tta)
    decisions = source.folder.decisions or source.first.decisions
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_s = to_onnx(graph, source.first.preprocessing.hw, fp32, opset)
        final = Path(tmp) / "model.onnx"
        fmt = PRECISIONS.get(precision)
        fmt.convert(fp32, final)
        props = metadata(source, tta, layout, cache_side_of(source), {"podium.precision": precision,
                                                                       "podium.opset": opset})
        write_metadata(final, props)
        import json

        parity = check_parity(final, source, data, json.loads(props[METADATA_KEY]), LAYOUTS[layout], decisions)
        ok = fmt.tolerance is None or parity["max_abs_diff"] <= fmt.tolerance
        report = {
            "path": str(target), "source": str(source.folder.path), "precision": precision, "opset": opset,
            "layout": layout, "tta": tta, "folds": [[c.fold for c in ck] for ck in source.checkpoints],
            "members": [r.path.name for r in source.runs], "weights": source.weights,
            "input": {"name": "images", "shape": _shape(layout, source.first.preprocessing.hw), "dtype": "uint8"},
            "output": {"name": "probs", "shape": ["batch", len(source.first.classes)], "dtype": "float32"},
            "classes": list(source.first.classes), "task": source.first.task, "decisions": decisions,
            "tolerance": fmt.tolerance, "passed": ok, "parity": parity, "export_s": round(export_s, 2),
            "total_s": round(time.perf_counter() - t0, 2), "bytes": final.stat().st_size,
        }
        if not ok:
            raise PodiumError(f"ONNX parity failed: max probability difference {parity['max_abs_diff']:.2e} > "
                              f"{fmt.tolerance:.0e} ({precision}) on {parity['images']} OOF images, labels agree "
                              f"{parity['label_agreement']:.1%}; nothing was written.")
        os.replace(final, target)
    if out:
        write_json(report_path, report)
    else:
        owner.write_export_report(report)
    return report


def _shape(layout: str, hw: tuple[int, int]) -> list[Any]:
    return ["batch", 3, *hw] if LAYOUTS[layout] else ["batch", *hw, 3]


__all__ = ["export_model", "precision_of", "shutil"]
