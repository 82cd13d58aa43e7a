"""The parity check of every export, and the numeric formats an export can be written in.

Parity: onnxruntime against podium's own prediction (``predict_checkpoints``, the one prediction path) on N
out-of-fold images of the run's data folder, both fed the same uint8 images (podium's resize). It records the largest
absolute probability difference, the agreement of the decoded labels (with the run's decisions), the task's primary
metric on those rows from both, the same for ``podium.inference.resize`` (the shipped helper) instead of podium's
resize, and that a batch of 1 and a batch of 7 give the same answers (the batch axis is dynamic).

Formats (``PRECISIONS``): each converts the fp32 graph and owns its tolerance on the largest probability
difference; ``None`` means the change is reported, not enforced (int8 quantisation changes answers by design).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from podium.core.errors import PodiumError
from podium.core.registry import Registry
from podium.data.folders.ingest import load_competition
from podium.data.pixels.cache import cache_side
from podium.data.pixels.decoders import HEAD_BYTES, decoder_for
from podium.data.pixels.images import read_image
from podium.data.training.dataset import evaluation_dataset
from podium.deploy.build import Source, graph_views, has_fold_output, views_of, with_views
from podium.engine.accel import inference_accelerator
from podium.inference.checkpoints import predict_checkpoints
from podium.inference.resize import load_rgb, prepare
from podium.tasks.metrics import score

# Largest |p_onnx - p_podium| an fp32 export may show: float32 kernels differ in summation order only (1e-6 on the
# tiny test models; 1e-5 on EfficientNet-Lite). An fp16 graph keeps 3 significant digits per activation.
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 2e-2


@dataclass(frozen=True)
class Precision:
    """A numeric format: ``convert(src, dst)`` writes the converted graph; ``tolerance`` bounds its parity (None:
    reported only)."""

    convert: Callable[[Path, Path], None]
    tolerance: float | None
    help: str


PRECISIONS: Registry[Precision] = Registry("export precision")


def _copy(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes())


def _fp16(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, disable_shape_infer=False)
    onnx.save(model, str(dst))


def _int8(src: Path, dst: Path) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice and the uint8 input it leaves alone are warnings on the root logger
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8)
    finally:
        root.setLevel(level)


PRECISIONS.register("fp32")(Precision(_copy, FP32_TOLERANCE, "float32 weights and activations"))
PRECISIONS.register("fp16")(Precision(_fp16, FP16_TOLERANCE, "float16 weights and activations, float32 in/out"))
PRECISIONS.register("int8")(Precision(_int8, None, "dynamic int8 quantisation of the weights (onnxruntime)"))


def session(path: Path, threads: int = 0) -> Any:
    """An onnxruntime CPU session on ``path``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_batches(sess: Any, x: np.ndarray, batch: int) -> np.ndarray:
    """Probabilities of ``x`` through ``sess`` in batches of ``batch``."""
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])


@dataclass
class ParityData:
    """The parity rows: ids, paths, targets, folds, podium's uint8 inputs and podium's probabilities with the
    graph's views; ``predict_probs``: ``podium predict``'s (the runs' own TTA) where those differ, else None."""

    ids: list[str]
    paths: list[str]
    y: np.ndarray
    folds: np.ndarray
    x: np.ndarray
    probs: np.ndarray
    predict_probs: np.ndarray | None = None


def parity_data(source: Source, n: int, tta: bool) -> ParityData:
    """N evenly spaced out-of-fold rows of the run's data folder (rows of folds.csv with a fold), their inputs and
    podium's prediction with the graph's views (``graph_views``), and with the runs' own TTA where that differs."""
    first = source.first
    cfg, prep = first.config, first.preprocessing
    comp = load_competition(source.runs[0].data_dir, cfg.data, check=False)
    table = source.runs[0].folds_table
    fold_of = dict(zip(table["id"].astype(str), table["fold"]))
    oof_rows = np.array([i for i, k in enumerate(comp.train["id"].astype(str)) if fold_of.get(k, -1) >= 0])
    if not len(oof_rows):
        raise PodiumError(f"{source.runs[0].path.name}'s folds.csv matches no image of {comp.root}; the parity "
                          "check needs the run's data folder as it was trained.")
    rows = oof_rows[np.unique(np.linspace(0, len(oof_rows) - 1, min(n, len(oof_rows))).round().astype(int))]
    ids, paths = comp.train["id"].iloc[rows].tolist(), comp.train["path"].iloc[rows].tolist()
    ds = evaluation_dataset(paths, prep, data=cfg.data)
    x = np.stack([ds.augmented(i)[1] for i in range(len(ds))])
    views = graph_views(source, tta)
    probs = _podium_probs(source, ids, paths, lambda c: with_views(c, views))
    own = all(views_of(ck[0], True) == views for ck in source.checkpoints)
    predict = None if own else _podium_probs(source, ids, paths, lambda c: c)  # podium predict: each run's TTA
    folds = np.array([int(fold_of[str(i)]) for i in ids])
    return ParityData(ids, paths, comp.targets[rows], folds, x, probs, predict)


def _podium_probs(source: Source, ids: list[str], paths: list[str], views: Callable[[Any], Any]) -> np.ndarray:
    """podium's weighted member mean on ``paths``, each checkpoint's views set by ``views`` (fp32 on the CPU: the
    graph is compared with exact answers)."""
    accelerator = inference_accelerator("cpu", source.first.config, precision="no")
    total = None
    for ckpts, weight in zip(source.checkpoints, source.weights):
        pred = predict_checkpoints([views(c) for c in ckpts], ids, paths, accelerator, workers=0)
        total = pred.probs * weight if total is None else total + pred.probs * weight
    return total / sum(source.weights)


def cache_side_of(source: Source) -> int:
    """The decoded-image cache's short side for this model (0 when the cache is off): part of the resize."""
    first = source.first
    data = first.config.data
    return cache_side(max(first.preprocessing.hw), data.cache_scale) if data.cache else 0


def _helper_rgb(path: str) -> np.ndarray:
    """``path`` as the standalone resize helper decodes it; a format it cannot read (DICOM needs pydicom) as podium
    does, so the helper's check still covers its resize on those files."""
    with open(path, "rb") as f:
        special = decoder_for(f.read(HEAD_BYTES))
    return read_image(path) if special is not None and not special.standalone else load_rgb(path)


def check_parity(path: Path, source: Source, data: ParityData, meta: dict[str, Any], nchw: bool,
                 decisions: dict[str, Any]) -> dict[str, Any]:
    """onnxruntime on ``path`` against podium's probabilities (see the module docstring)."""
    sess = session(path)
    x = data.x.transpose(0, 3, 1, 2).copy() if nchw else data.x
    onnx = run_batches(sess, x, 7).astype(np.float64)
    single = run_batches(sess, x[:3], 1).astype(np.float64)
    helper_x = np.stack([prepare(_helper_rgb(p), meta) for p in data.paths])
    helper = run_batches(sess, helper_x.transpose(0, 3, 1, 2).copy() if nchw else helper_x, 7).astype(np.float64)
    first = source.first
    task, classes = first.resolved_task(), list(first.classes)
    labels = task.decode(data.probs, decisions, classes)

    def agree(p: np.ndarray) -> float:
        return float(np.mean([a == b for a, b in zip(task.decode(p, decisions, classes), labels)]))

    def metric(p: np.ndarray) -> float:
        with warnings.catch_warnings():  # fp16 probabilities sum to 1 within 1e-3 only; log loss says so
            warnings.simplefilter("ignore", UserWarning)
            return float(score(task, data.y, p, decisions=decisions)[task.primary])

    out = {
        "images": len(data.ids), "metric": task.primary,
        "max_abs_diff": float(np.abs(onnx - data.probs).max()),
        "label_agreement": agree(onnx),
        "metric_podium": metric(data.probs), "metric_onnx": metric(onnx),
        "metric_change": metric(onnx) - metric(data.probs),
        "batch1_vs_batch7_max_abs_diff": float(np.abs(single - onnx[:3]).max()),
        "helper_pixels_equal": float((helper_x == data.x).mean()),
        "helper_max_abs_diff": float(np.abs(helper - data.probs).max()),
        "helper_label_agreement": agree(helper),
    }
    if data.predict_probs is not None:  # the graph leaves out TTA views podium predict applies: by how much
        out.update({"predict_max_abs_diff": float(np.abs(onnx - data.predict_probs).max()),
                    "predict_labels_differ": 1.0 - _agreement(task, onnx, data.predict_probs, decisions, classes)})
    if has_fold_output(source):
        out.update(out_of_fold(sess, x, source, data, metric))
    return out


def _agreement(task: Any, p: np.ndarray, q: np.ndarray, decisions: dict[str, Any], classes: list[str]) -> float:
    """The share of rows whose decoded labels from ``p`` and ``q`` are the same."""
    return float(np.mean([a == b for a, b in zip(task.decode(p, decisions, classes),
                                                 task.decode(q, decisions, classes))]))


def out_of_fold(sess: Any, x: np.ndarray, source: Source, data: ParityData, metric: Callable[[np.ndarray], float]
                ) -> dict[str, Any]:
    """The CV metric recomputed from the graph's per-fold outputs (each row by the fold that did not train on it),
    against the run's saved OOF probabilities of the same rows and views (``oof.csv``, or ``fold{k}/oof_plain.csv``
    for a graph without the run's TTA)."""
    name = sess.get_inputs()[0].name
    per_fold = np.concatenate([sess.run(None, {name: x[i:i + 7]})[1] for i in range(0, len(x), 7)])
    folds = [c.fold for c in source.checkpoints[0]]
    own = per_fold[np.arange(len(x)), [folds.index(f) for f in data.folds]].astype(np.float64)
    run, first = source.runs[0], source.first
    classes = list(first.classes)
    graph_views = views_of(first, tta=False)
    saved = None
    if views_of(first, tta=True) == graph_views or _views_equal(sess, first):
        saved = run.oof.set_index("id")
    else:
        plain = [run.fold_oof(f, plain=True) for f in folds]
        saved = pd.concat(plain).set_index("id") if all(p is not None for p in plain) else None
    result: dict[str, Any] = {"cv_metric_onnx": metric(own)}
    if saved is not None:
        ref = saved.loc[[str(i) for i in data.ids], classes].to_numpy(dtype=np.float64)
        result.update({"cv_metric_saved_oof": metric(ref), "oof_max_abs_diff": float(np.abs(own - ref).max())})
    return result


def _views_equal(sess: Any, first: Any) -> bool:
    """Whether the graph runs the run's own TTA (exported with ``--tta``)."""
    import json

    tta = json.loads(sess.get_modelmeta().custom_metadata_map.get("podium.tta", "{}"))
    views, scales = views_of(first, tta=True)
    return tta.get("views") == list(views) and tta.get("scales") == list(scales)
