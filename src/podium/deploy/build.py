"""``export_model``: a run or ensemble folder -> one ONNX graph, its metadata, and the parity check (``export.json``).

The graph (``podium.deploy.graph.ExportGraph``) takes uint8 RGB images at the model's input size, NHWC
``(batch, height, width, 3)`` by default (what PIL, OpenCV and browsers give; ``layout="nchw"`` for
``(batch, 3, height, width)``), with a dynamic batch axis, and returns float32 ``(batch, classes)`` probabilities
exactly as podium computes them. The metadata props hold everything a consumer needs to use it without podium:
classes, task, metric, CV score, decisions and the preprocessing (see ``podium.inference.resize``).

Exporter: ``torch.onnx.export(dynamo=True)`` (torch.export + onnxscript), named explicitly with the opset so a new
torch cannot change either under the user. Both exporters gave a dynamic batch on timm CNNs here (torch 2.14); the
TorchScript one is deprecated since torch 2.9, so podium uses the one that stays. The batch axis is checked, not
trusted: the parity check runs batches of 1 and of 7.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import onnx
import torch

from podium.core.errors import PodiumError
from podium.core.io import atomic_path
from podium.core.registry import Registry
from podium.deploy.graph import ExportGraph, Member, decoder_for
from podium.inference.resize import METADATA_KEY
from podium.runs.checkpoint import Checkpoint
from podium.runs.ensemble import Ensemble, open_trained
from podium.runs.run import Run

DEFAULT_OPSET = 18


def podium_version() -> str:
    """The installed podium's version (``podium.__version__`` without importing the API through the package)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("podium")
    except PackageNotFoundError:
        return "unknown"
# the graph's image tensor layout (--layout) -> whether its channels come first
INPUT_LAYOUTS = {"nhwc": False, "nchw": True}

# blend name -> the members' weights from members.json (a probability mean in the graph); other blends (logit_mean,
# rank_mean) are refused: a rank mean depends on the other rows, which one image in a request does not have.
WeightsOf = Callable[[dict[str, Any]], list[float]]
GRAPH_BLENDS: Registry[WeightsOf] = Registry("exportable blend")
GRAPH_BLENDS.register("mean")(lambda members: [1.0] * len(members["members"]))
GRAPH_BLENDS.register("weights")(lambda members: [float(m["weight"]) for m in members["members"]])


@dataclass
class Source:
    """What goes into one graph: the folder, its runs with their blend weights and their checkpoints."""

    folder: Run
    runs: list[Run]
    weights: list[float]
    checkpoints: list[list[Checkpoint]]
    blend: str = ""

    @property
    def first(self) -> Checkpoint:
        """The first fold checkpoint (classes, task, preprocessing)."""
        return self.checkpoints[0][0]


def load_source(path: str | Path, folds: str = "all") -> Source:
    """Open a run or ensemble folder and its checkpoints (``folds``: ``all`` or one fold number); a run without a
    finished fold, or an ensemble missing a member, is refused before anything is built."""
    folder = open_trained(path, "export")
    if isinstance(folder, Ensemble):
        ens = folder
        members, blend = ens.members, ens.members.get("blend", "")
        if blend not in GRAPH_BLENDS:
            raise PodiumError(f"{ens.path.name} blends with {blend}; podium export takes blends "
                              f"{', '.join(GRAPH_BLENDS)} (a probability mean). Rebuild it with podium ensemble "
                              "--blend weights.")
        runs = [Run.open(ens.member_dir(m), writer=False) for m in members["members"]]
        weights = GRAPH_BLENDS.get(blend)(members)
    else:
        runs, weights, blend = [folder], [1.0], ""
    checkpoints = [_fold_checkpoints(run, folds) for run, w in zip(runs, weights) if w > 0]
    runs = [run for run, w in zip(runs, weights) if w > 0]
    weights = [w for w in weights if w > 0]
    source = Source(folder, runs, weights, checkpoints, blend)
    _check_compatible(source)
    return source


def _fold_checkpoints(run: Run, folds: str) -> list[Checkpoint]:
    ckpts = run.checkpoints()
    if folds == "all":
        return ckpts
    if not folds.isdigit() or int(folds) not in [c.fold for c in ckpts]:
        raise PodiumError(f"--folds {folds}: {run.path.name} has folds {', '.join(str(c.fold) for c in ckpts)}; "
                          "give one of them or all.")
    return [c for c in ckpts if c.fold == int(folds)]


# the preprocessing one graph's input fixes: members that differ in any of these need a graph each (a bundle)
PREP_KEYS = ("hw", "resize", "interpolation", "crop_pct", "pad_fill", "ops", "op_params")


def _check_compatible(source: Source) -> None:
    """One answer for every network: the members must share classes and task, and a run's folds its preprocessing
    (members that prepare images differently are grouped into a bundle, ``preprocessing_groups``)."""
    first = source.first
    for run, ckpts in zip(source.runs, source.checkpoints):
        for c in ckpts:
            if (c.classes, c.task) != (first.classes, first.task):
                raise PodiumError(f"{run.path.name} fold {c.fold} predicts other classes or another task than "
                                  f"{source.runs[0].path.name}; they cannot share one graph.")
            differs = [k for k in PREP_KEYS if getattr(c.preprocessing, k) != getattr(ckpts[0].preprocessing, k)]
            if differs:
                raise PodiumError(f"{run.path.name} fold {c.fold} prepares images differently from its fold "
                                  f"{ckpts[0].fold} ({', '.join(differs)}); export one fold with --folds.")


def _prep_key(ckpt: Checkpoint) -> tuple[Any, ...]:
    data = ckpt.config.data
    cache = (data.cache, data.cache_scale) if data.cache else (False,)
    return (*(getattr(ckpt.preprocessing, k) for k in PREP_KEYS), cache)


def preprocessing_groups(source: Source) -> list[Source]:
    """The members grouped by the preprocessing one graph's input fixes (``PREP_KEYS`` and the decoded-image cache),
    in the members' order; a single group is the source itself, exported as one graph as always."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, ckpts in enumerate(source.checkpoints):
        groups.setdefault(_prep_key(ckpts[0]), []).append(i)
    if len(groups) == 1:
        return [source]
    return [Source(source.folder, [source.runs[i] for i in idx], [source.weights[i] for i in idx],
                   [source.checkpoints[i] for i in idx], source.blend) for idx in groups.values()]


def views_of(ckpt: Checkpoint, tta: bool) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """A checkpoint's TTA views and scales: the run's own with ``tta``, the plain image otherwise."""
    if not tta:
        return ("identity",), (1.0,)
    return tuple(ckpt.config.predict.tta), tuple(ckpt.config.predict.scales)


def graph_views(source: Source, tta: bool) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The views and scales the graph runs: the runs' own TTA (what ``podium predict`` applies) with ``tta``, the
    plain image without. One graph runs one set, so members predicting with different TTA get the plain image; the
    report then says how far the graph is from ``podium predict`` (``predict_differs``)."""
    theirs = {views_of(ck[0], True) for ck in source.checkpoints}
    if not tta or len(theirs) > 1:
        return views_of(source.first, False)
    return theirs.pop()


def with_views(ckpt: Checkpoint, views: tuple[tuple[str, ...], tuple[float, ...]]) -> Checkpoint:
    """``ckpt`` with the config's views and scales set to ``views`` (for podium's own prediction)."""
    cfg = ckpt.config
    return replace(ckpt, config=replace(cfg, predict=replace(cfg.predict, tta=views[0], scales=views[1])))


def build_graph(source: Source, tta: bool = True, layout: str = "nhwc") -> ExportGraph:
    """The torch module of the whole export (eval mode, CPU); ``tta``: the runs' TTA views inside (see
    ``graph_views``)."""
    if layout not in INPUT_LAYOUTS:
        raise PodiumError(f"--layout {layout}: choose from {', '.join(INPUT_LAYOUTS)}.")
    if len(preprocessing_groups(source)) > 1:
        raise PodiumError(f"{source.folder.path.name}'s members prepare images differently; one ONNX graph has one "
                          "input, so podium export writes a bundle of graphs for it.")
    members = []
    for ckpts, weight in zip(source.checkpoints, source.weights):
        task = ckpts[0].resolved_task()
        members.append(Member([c.build_model() for c in ckpts], ckpts[0].preprocessing, decoder_for(task), weight))
    views, scales = graph_views(source, tta)
    return ExportGraph(members, len(source.first.classes), views, scales, nchw=INPUT_LAYOUTS[layout],
                       fold_output=has_fold_output(source)).eval()


def has_fold_output(source: Source) -> bool:
    """Whether the graph also outputs each fold's probabilities: a single run exported with all its folds."""
    return len(source.runs) == 1 and not source.blend and len(source.checkpoints[0]) > 1


def to_onnx(graph: ExportGraph, hw: tuple[int, int], path: Path, opset: int = DEFAULT_OPSET) -> float:
    """Export ``graph`` with a dynamic batch axis to ``path`` (atomically); returns the seconds it took."""
    h, w = hw
    shape = (2, 3, h, w) if graph.nchw else (2, h, w, 3)
    example = torch.randint(0, 256, shape, dtype=torch.uint8)
    t0 = time.perf_counter()
    with atomic_path(path) as tmp, warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            outputs = ["probs", "fold_probs"] if graph.fold_output else ["probs"]
            program = torch.onnx.export(graph, (example,), dynamo=True, opset_version=opset, input_names=["images"],
                                        output_names=outputs, external_data=False, optimize=True,
                                        dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1)}})
            program.save(str(tmp), external_data=False)
        except PodiumError:
            raise
        except Exception as e:  # noqa: BLE001 - the exporter fails in many ways; one line names it
            raise PodiumError(f"ONNX export failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); try "
                              f"another --opset (now {opset}).") from None
    return time.perf_counter() - t0


def metadata(source: Source, tta: bool, layout: str, cache_side: int, extra: dict[str, Any]) -> dict[str, str]:
    """The model's metadata props (every value a string; JSON where structured)."""
    first, prep = source.first, source.first.preprocessing
    h, w = prep.hw
    info = source.folder.info
    metrics = _metrics_or_empty(source.folder)
    views, scales = graph_views(source, tta)
    pre = {"layout": layout, "height": h, "width": w, "channels": "RGB", "dtype": "uint8", "resize": prep.resize,
           "interpolation": prep.interpolation, "crop_pct": prep.crop_pct, "pad_fill": prep.pad_fill,
           "mean": list(prep.mean), "std": list(prep.std), "ops": list(prep.ops),
           "op_params": [[k, v] for k, v in prep.op_params], "cache_side": cache_side,
           "normalized_in_graph": True}
    props = {
        "podium.version": podium_version(),
        "podium.classes": json.dumps(list(first.classes)),
        "podium.task": first.task,
        "podium.coding": first.resolved_task().loss,
        "podium.decisions": json.dumps(source.folder.decisions or first.decisions),
        "podium.metric": str(metrics.get("metric", first.metric)),
        "podium.cv_score": json.dumps(metrics.get("cv_score")),
        "podium.source": source.folder.path.name,
        "podium.model": ", ".join(dict.fromkeys(c[0].config.model.name for c in source.checkpoints)),
        "podium.members": json.dumps([{"run": r.path.name, "weight": w, "folds": [c.fold for c in ck]}
                                      for r, w, ck in zip(source.runs, source.weights, source.checkpoints)]),
        "podium.tta": json.dumps({"views": list(views), "scales": list(scales)}),
        METADATA_KEY: json.dumps(pre),
        "podium.data_dir": str(info.get("data_dir", "")),
        **{k: str(v) for k, v in extra.items()},
    }
    return props


def write_metadata(path: Path, props: dict[str, str]) -> None:
    """Set the model's metadata props (replacing podium's earlier ones), atomically."""
    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    model.producer_name, model.producer_version = "podium", podium_version()
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))


def _metrics_or_empty(run: Run) -> dict[str, Any]:
    return run.metrics if run.finished else {}
