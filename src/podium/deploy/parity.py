"""The parity check of every export, and the numeric formats an export can be written in.

Parity: onnxruntime against podium's own prediction (``predict_checkpoints``, the one prediction path) on N
out-of-fold images of the run's data folder, both fed the same uint8 images (podium's resize). It records the largest
absolute probability difference, the agreement of the decoded labels (with the run's decisions), the task's primary
metric on those rows from both, the same for ``podium.deploy.resize`` (the shipped helper) instead of podium's
resize, and that a batch of 1 and a batch of 7 give the same answers (the batch axis is dynamic).

Formats (``PRECISIONS``): each converts the fp32 graph and owns its tolerance on the largest probability
difference; ``None`` means the change is reported, not enforced (int8 quantisation changes answers by design).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from podium.config import TrainConfig
from podium.core.registry import Registry
from podium.data.cache import cache_side, decoded_images
from podium.data.dataset import ImageDataset
from podium.data.image_ops import ops_of
from podium.data.ingest import load_competition
from podium.data.transforms import create_transform
from podium.deploy.build import Source, plain_views
from podium.deploy.resize import load_rgb, prepare
from podium.engine.accel import make_accelerator
from podium.inference.checkpoints import predict_checkpoints
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
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8)


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
    """The parity rows: ids, paths, targets, podium's uint8 inputs and podium's probabilities."""

    ids: list[str]
    paths: list[str]
    y: np.ndarray
    x: np.ndarray
    probs: np.ndarray


def parity_data(source: Source, n: int, tta: bool) -> ParityData:
    """N evenly spaced training (out-of-fold) rows of the run's data folder, their inputs and podium's prediction."""
    first = source.first
    cfg, prep = first.config, first.preprocessing
    comp = load_competition(source.runs[0].data_dir, cfg.data, check=False)
    rows = np.unique(np.linspace(0, len(comp.train) - 1, min(n, len(comp.train))).round().astype(int))
    ids, paths = comp.train["id"].iloc[rows].tolist(), comp.train["path"].iloc[rows].tolist()
    ops = ops_of(prep)
    ds = ImageDataset(paths, None, create_transform(prep), decoded_images(paths, prep.hw, cfg.data, ops), ops=ops)
    x = np.stack([ds.augmented(i)[1] for i in range(len(ds))])
    accelerator = make_accelerator(TrainConfig(device="cpu", precision="no", threads=cfg.train.threads))
    total = None
    for ckpts, weight in zip(source.checkpoints, source.weights):
        pred = predict_checkpoints([plain_views(c, tta) for c in ckpts], ids, paths, accelerator, workers=0)
        total = pred.probs * weight if total is None else total + pred.probs * weight
    return ParityData(ids, paths, comp.targets[rows], x, total / sum(source.weights))


def cache_side_of(source: Source) -> int:
    """The decoded-image cache's short side for this model (0 when the cache is off): part of the resize."""
    first = source.first
    data = first.config.data
    return cache_side(max(first.preprocessing.hw), data.cache_scale) if data.cache else 0


def check_parity(path: Path, source: Source, data: ParityData, meta: dict[str, Any], nchw: bool,
                 decisions: dict[str, Any]) -> dict[str, Any]:
    """onnxruntime on ``path`` against podium's probabilities (see the module docstring)."""
    sess = session(path)
    x = data.x.transpose(0, 3, 1, 2).copy() if nchw else data.x
    onnx = run_batches(sess, x, 7).astype(np.float64)
    single = run_batches(sess, x[:3], 1).astype(np.float64)
    helper_x = np.stack([prepare(load_rgb(p), meta) for p in data.paths])
    helper = run_batches(sess, helper_x.transpose(0, 3, 1, 2).copy() if nchw else helper_x, 7).astype(np.float64)
    first = source.first
    task, classes = first.resolved_task(), list(first.classes)
    labels = task.decode(data.probs, decisions, classes)

    def agree(p: np.ndarray) -> float:
        return float(np.mean([a == b for a, b in zip(task.decode(p, decisions, classes), labels)]))

    def metric(p: np.ndarray) -> float:
        return float(score(task, data.y, p, decisions=decisions)[task.primary])

    return {
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
