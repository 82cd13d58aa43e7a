"""``export_model``: ``podium export RUN_OR_ENSEMBLE`` from top to bottom (an ensemble whose members prepare images
differently becomes a bundle of graphs, ``podium.deploy.bundle``).

The graph is built, exported, converted to the asked precision, given its metadata and checked for parity in a
temporary folder beside the destination; only a graph that passes (or an int8 one, whose change is reported) is moved
into place, with its report ``export.json``, so a failed export leaves nothing behind. The defaults live in the run
(or ensemble) folder: ``export/model.onnx`` and ``export/export.json`` (``Run.onnx_path``, ``Run.export_report_path``);
with ``out=FILE`` the report is ``FILE`` with the suffix ``.export.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from podium.core.errors import PodiumError
from podium.core.io import write_json
from podium.deploy.build import (
    DEFAULT_OPSET,
    INPUT_LAYOUTS,
    Source,
    build_graph,
    graph_views,
    load_source,
    metadata,
    preprocessing_groups,
    to_onnx,
    views_of,
    write_metadata,
)
from podium.deploy.graph import ExportGraph
from podium.deploy.parity import PRECISIONS, ParityData, cache_side_of, check_parity, parity_data
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


def export_model(folder: str | Path, out: str | Path | None = None, folds: str = "all", tta: bool = True,
                 opset: int = DEFAULT_OPSET, fp16: bool = False, quantize: str = "", layout: str = "nhwc",
                 parity_images: int = PARITY_IMAGES) -> dict[str, Any]:
    """Export a run or ensemble folder to one ONNX graph and check it against podium; returns the report (also
    written to ``export.json``) with ``path``, the graph's file. ``tta``: the runs' TTA views inside, so the graph
    answers as ``podium predict`` does (``tta_views``); where the graph cannot, ``predict_differs`` says by how much."""
    settings = {"precision": precision_of(fp16, quantize), "opset": opset, "layout": layout, "tta": tta}
    _check_flags(layout, opset)
    t0 = time.perf_counter()
    source = load_source(folder, folds)
    owner = open_folder(source.folder.path)
    groups = preprocessing_groups(source)
    if len(groups) > 1:  # members that prepare images differently: one graph per preprocessing, in a bundle folder
        return _write_bundle(source, groups, owner, out, settings, parity_images, t0)
    target = Path(out).expanduser().resolve() if out else owner.onnx_path
    if target.exists() and target.is_dir():
        raise PodiumError(f"--out {target} is a folder; give a file name such as model.onnx.")
    graph = build_graph(source, tta, layout)
    data = parity_data(source, parity_images, tta)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        final, export_s, props = _write_graph(graph, source, Path(tmp), settings)
        report = _describe(source, target, settings)
        report.update(_parity(final, source, data, props, settings, report["decisions"]))
        report["predict_differs"] = _predict_differs(source, tta, report["parity"])
        report.update({"export_s": round(export_s, 2), "total_s": round(time.perf_counter() - t0, 2),
                       "bytes": final.stat().st_size})
        os.replace(final, target)
    if out:
        write_json(target.with_suffix(".export.json"), report)
    else:
        owner.write_export_report(report)
    return report


def _write_bundle(source: Source, groups: list[Source], owner: Any, out: str | Path | None,
                  settings: dict[str, Any], parity_images: int, t0: float) -> dict[str, Any]:
    """A bundle (``podium.deploy.bundle``) at ``out`` or ``export/bundle``, its report beside it as a graph's is."""
    from podium.deploy.bundle import export_bundle

    target = Path(out).expanduser().resolve() if out else owner.bundle_path
    report = export_bundle(source, groups, target, settings, parity_images, t0)
    if out:
        write_json(target.with_name(target.name + ".export.json"), report)
    else:
        owner.write_export_report(report)
    return report


def _check_flags(layout: str, opset: int) -> None:
    if layout not in INPUT_LAYOUTS:
        raise PodiumError(f"--layout {layout}: choose from {', '.join(INPUT_LAYOUTS)}.")
    if not 6 <= opset <= 23:
        raise PodiumError(f"--opset {opset}: give an ONNX opset between 6 and 23 (default {DEFAULT_OPSET}).")


def _write_graph(graph: ExportGraph, source: Source, tmp: Path, settings: dict[str, Any]
                 ) -> tuple[Path, float, dict[str, str]]:
    """The graph exported into ``tmp``, converted to the asked precision and given its metadata: (its file, the
    export's seconds, the metadata props)."""
    fp32 = tmp / "fp32.onnx"
    export_s = to_onnx(graph, source.first.preprocessing.hw, fp32, settings["opset"])
    final = tmp / "model.onnx"
    PRECISIONS.get(settings["precision"]).convert(fp32, final)
    props = metadata(source, settings["tta"], settings["layout"], cache_side_of(source),
                     {"podium.precision": settings["precision"], "podium.opset": settings["opset"]})
    write_metadata(final, props)
    return final, export_s, props


def _describe(source: Source, target: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The report's account of what was exported: source, settings, members, the graph's input and output."""
    hw = source.first.preprocessing.hw
    views, scales = graph_views(source, settings["tta"])
    return {
        "path": str(target), "source": str(source.folder.path), **settings,
        "folds": [[c.fold for c in ck] for ck in source.checkpoints],
        "members": [r.path.name for r in source.runs], "weights": source.weights,
        "tta_views": list(views), "tta_scales": list(scales),
        "input": {"name": "images", "shape": _shape(settings["layout"], hw), "dtype": "uint8"},
        "output": {"name": "probs", "shape": ["batch", len(source.first.classes)], "dtype": "float32"},
        "classes": list(source.first.classes), "task": source.first.task,
        "decisions": source.folder.decisions or source.first.decisions,
    }


def _parity(final: Path, source: Source, data: ParityData, props: dict[str, str], settings: dict[str, Any],
            decisions: Any) -> dict[str, Any]:
    """The parity check of the graph in ``final`` against podium; one that misses its precision's tolerance stops
    here, before anything is moved into place."""
    precision = settings["precision"]
    fmt = PRECISIONS.get(precision)
    parity = check_parity(final, source, data, json.loads(props[METADATA_KEY]), INPUT_LAYOUTS[settings["layout"]],
                          decisions)
    ok = fmt.tolerance is None or parity["max_abs_diff"] <= fmt.tolerance
    if not ok:
        raise PodiumError(f"ONNX parity failed: max probability difference {parity['max_abs_diff']:.2e} > "
                          f"{fmt.tolerance:.0e} ({precision}) on {parity['images']} OOF images, labels agree "
                          f"{parity['label_agreement']:.1%}; nothing was written.")
    return {"tolerance": fmt.tolerance, "passed": ok, "parity": parity}


def _predict_differs(source: Source, tta: bool, parity: dict[str, Any]) -> dict[str, Any] | None:
    """None when the graph runs the views ``podium predict`` applies; else why not and by how much on the parity
    images, with the one line the CLI prints (``note``)."""
    if "predict_max_abs_diff" not in parity:
        return None
    views = "; ".join(dict.fromkeys("+".join(v) + (f" at scales {s}" if s != (1.0,) else "")
                                    for v, s in (views_of(ck[0], True) for ck in source.checkpoints)))
    why = ("--no-tta" if not tta else "the members predict with different TTA views or scales; one graph runs one "
           "set, so it runs the plain image")
    out = {"reason": why, "predict_views": views, "max_abs_diff": parity["predict_max_abs_diff"],
           "labels_differ": parity["predict_labels_differ"], "images": parity["images"]}
    out["note"] = (f"podium predict differs from this graph ({why}; podium predict runs {views}): max probability "
                   f"difference {out['max_abs_diff']:.2e}, {out['labels_differ']:.1%} of labels differ on "
                   f"{out['images']} OOF images.")
    return out


def _shape(layout: str, hw: tuple[int, int]) -> list[Any]:
    return ["batch", 3, *hw] if INPUT_LAYOUTS[layout] else ["batch", *hw, 3]


__all__ = ["export_model", "precision_of"]
