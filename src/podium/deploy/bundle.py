"""``export_bundle``: ``podium export ENSEMBLE`` for an ensemble whose members prepare images differently (input
size, resize method, image ops, cache): a bundle folder (``runs.bundle.Bundle``) instead of one graph.

Each preprocessing group (``build.preprocessing_groups``; members that share preprocessing still share one graph)
is built, converted to the asked precision, given its metadata and checked for parity exactly as a single export's
graph is (``parity.check_parity`` against podium's prediction of that group). Then the bundle as a whole is checked
as ``podium predict --onnx`` and ``podium serve`` run it: the torch-free ``OnnxBundle`` read back from the folder,
each parity image decoded once and prepared by the resize helper at every graph's size, the graphs blended with
their weights, against ``podium predict`` of the ensemble (its members' probabilities with their blend weights).
Only a bundle whose every graph and whole answer pass the precision's tolerance is moved into place, with the
parity summary in bundle.json and the full report in export.json.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from podium.core.errors import PodiumError
from podium.data.pixels.images import read_image
from podium.deploy.build import INPUT_LAYOUTS, Source, build_graph
from podium.deploy.parity import PRECISIONS, ParityData, check_parity, parity_data
from podium.inference.onnx import OnnxBundle
from podium.inference.resize import METADATA_KEY
from podium.runs.bundle import Bundle, install, staging
from podium.tasks.metrics import score


def export_bundle(source: Source, groups: list[Source], target: Path, settings: dict[str, Any],
                  parity_images: int, t0: float) -> dict[str, Any]:
    """Write the bundle of ``groups`` (``source`` split by preprocessing) to the folder ``target``; returns the
    report (see the module docstring)."""
    from podium.deploy.writer import _describe, _predict_differs

    if target.suffix == ".onnx":
        raise PodiumError(f"--out {target}: {source.folder.path.name}'s members prepare images differently, so it "
                          "exports a bundle folder (one graph per preprocessing); give a folder name, e.g. bundle.")
    if target.exists() and not Bundle.is_bundle(target):  # checked again when it is replaced
        raise PodiumError(f"--out {target} exists and is not a podium bundle; give a new folder name.")
    decisions = source.folder.decisions or source.first.decisions
    with staging(target) as tmp:
        bundle = Bundle(Path(tmp) / "bundle")
        bundle.path.mkdir()
        graphs, datas, export_s = _write_graphs(groups, bundle, Path(tmp), target, settings, parity_images, decisions)
        _same_rows(datas)
        manifest = _manifest(source, graphs, settings)
        bundle.write_manifest(manifest)
        parity = bundle_parity(OnnxBundle(bundle.path), source, datas, decisions)
        tolerance = _enforce(settings["precision"], parity, graphs)
        bundle.write_manifest({**manifest, "parity": {k: parity[k] for k in SUMMARY}})
        report = {**_describe(source, target, settings), "input": [g["input"] for g in graphs], "bundle": True,
                  "graphs": graphs, "tolerance": tolerance, "passed": True, "parity": parity,
                  "tta_views": sorted({v for g in graphs for v in g["tta"]["views"]}),
                  "tta_scales": sorted({s for g in graphs for s in g["tta"]["scales"]})}
        report["predict_differs"] = _predict_differs(source, settings["tta"], parity)
        report.update({"export_s": round(export_s, 2), "total_s": round(time.perf_counter() - t0, 2),
                       "bytes": sum(bundle.graph_path(i).stat().st_size for i in range(len(groups)))})
        install(bundle.path, target)
    return report


def _write_graphs(groups: list[Source], bundle: Bundle, tmp: Path, target: Path, settings: dict[str, Any],
                  parity_images: int, decisions: dict[str, Any]
                  ) -> tuple[list[dict[str, Any]], list[ParityData], float]:
    """Each group's graph built, converted, given its metadata and checked as a single export's, then moved into
    ``bundle``: (the graphs' manifest entries, their parity data, the export's seconds)."""
    from podium.deploy.writer import _describe, _write_graph

    graphs, datas, export_s = [], [], 0.0
    for i, group in enumerate(groups):
        data = parity_data(group, parity_images, settings["tta"])
        final, seconds, props = _write_graph(build_graph(group, settings["tta"], settings["layout"]), group,
                                             _fresh(tmp / f"graph{i}"), settings)
        parity = check_parity(final, group, data, json.loads(props[METADATA_KEY]), INPUT_LAYOUTS[settings["layout"]],
                              decisions)
        os.replace(final, bundle.graph_path(i))
        graphs.append(_graph_entry(bundle.graph_path(i), group, props, parity, _describe(group, target, settings)))
        datas.append(data)
        export_s += seconds
    return graphs, datas, export_s


SUMMARY = ("images", "metric", "max_abs_diff", "label_agreement", "metric_podium", "metric_onnx", "helper_max_abs_diff")


def _fresh(folder: Path) -> Path:
    folder.mkdir()
    return folder


def _graph_entry(path: Path, group: Source, props: dict[str, str], parity: dict[str, Any],
                 described: dict[str, Any]) -> dict[str, Any]:
    """One graph of the manifest and report: its file, weight (its members' blend weights summed), members, input,
    TTA views and its own parity against podium's prediction of its members."""
    prep = json.loads(props[METADATA_KEY])
    members = [{"run": r.path.name, "weight": w, "folds": [c.fold for c in ck]}
               for r, w, ck in zip(group.runs, group.weights, group.checkpoints)]
    return {"file": path.name, "weight": float(sum(group.weights)), "members": members,
            "input": {**described["input"], "size": f"{prep['height']}x{prep['width']}", "resize": prep["resize"],
                      "interpolation": prep["interpolation"]},
            "tta": json.loads(props["podium.tta"]), "model": props["podium.model"],
            "parity": {k: parity[k] for k in ("images", "max_abs_diff", "label_agreement", "helper_max_abs_diff")}}


def _manifest(source: Source, graphs: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    from podium.deploy.build import _metrics_or_empty, podium_version

    first, metrics = source.first, _metrics_or_empty(source.folder)
    return {"podium_version": podium_version(), "source": source.folder.path.name,
            "classes": list(first.classes), "task": first.task, "coding": first.resolved_task().loss,
            "decisions": source.folder.decisions or first.decisions, "blend": source.blend or "mean",
            "metric": str(metrics.get("metric", first.metric)), "cv_score": metrics.get("cv_score"),
            "model": ", ".join(g["model"] for g in graphs), "precision": settings["precision"],
            "layout": settings["layout"], "graphs": graphs}


def _same_rows(datas: list[ParityData]) -> None:
    """Every group's parity rows must be the same images (an ensemble's members share folds)."""
    if any(d.ids != datas[0].ids for d in datas[1:]):
        raise PodiumError("The ensemble's members chose different parity images (their folds.csv differ); rebuild "
                          "it with podium ensemble from runs on shared folds.")


def bundle_parity(model: OnnxBundle, source: Source, datas: list[ParityData], decisions: dict[str, Any]
                  ) -> dict[str, Any]:
    """The bundle read back, as predict --onnx and serve run it, against podium's ensemble prediction."""
    first = datas[0]
    task, classes = source.first.resolved_task(), list(source.first.classes)
    podium = model.blend([d.probs for d in datas])
    onnx = model.blend([g.probabilities(d.x) for g, d in zip(model.graphs, datas)])
    runtime_x = np.stack([model.prepare(read_image(p)) for p in first.paths])  # one decode, every graph's resize
    runtime = np.concatenate([model.probabilities(runtime_x[i:i + 7]) for i in range(0, len(runtime_x), 7)])
    single = np.concatenate([model.probabilities(runtime_x[i:i + 1]) for i in range(min(3, len(runtime_x)))])

    def agree(p: np.ndarray, q: np.ndarray = podium) -> float:
        return float(np.mean([a == b for a, b in zip(task.decode(p, decisions, classes),
                                                     task.decode(q, decisions, classes))]))

    def metric(p: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return float(score(task, first.y, p, decisions=decisions)[task.primary])

    out = {"images": len(first.ids), "metric": task.primary, "max_abs_diff": float(np.abs(onnx - podium).max()),
           "label_agreement": agree(onnx), "metric_podium": metric(podium), "metric_onnx": metric(onnx),
           "metric_change": metric(onnx) - metric(podium),
           "batch1_vs_batch7_max_abs_diff": float(np.abs(single - runtime[:len(single)]).max()),
           "helper_pixels_equal": float(np.mean([(x == d.x).mean() for x, d in zip(model.split(runtime_x), datas)])),
           "helper_max_abs_diff": float(np.abs(runtime - podium).max()), "helper_label_agreement": agree(runtime)}
    if any(d.predict_probs is not None for d in datas):  # a group runs the plain image where predict runs TTA
        predict = model.blend([d.probs if d.predict_probs is None else d.predict_probs for d in datas])
        out.update({"predict_max_abs_diff": float(np.abs(onnx - predict).max()),
                    "predict_labels_differ": 1.0 - agree(onnx, predict)})
    return out


def _enforce(precision: str, parity: dict[str, Any], graphs: list[dict[str, Any]]) -> float | None:
    """The precision's tolerance, enforced on the whole bundle and on each graph, on podium's own inputs as for a
    single graph (None: int8, reported only); the resize helper's difference is reported (``helper_max_abs_diff``)."""
    tolerance = PRECISIONS.get(precision).tolerance
    worst = max([parity["max_abs_diff"], *(g["parity"]["max_abs_diff"] for g in graphs)])
    if tolerance is not None and worst > tolerance:
        raise PodiumError(f"ONNX parity failed: max probability difference {worst:.2e} > {tolerance:.0e} ({precision}) "
                          f"on {parity['images']} OOF images across the bundle's {len(graphs)} graphs, labels agree "
                          f"{parity['label_agreement']:.1%}; nothing was written.")
    return tolerance


__all__ = ["bundle_parity", "export_bundle"]
