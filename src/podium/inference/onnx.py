"""An exported model at work without torch: ``OnnxModel`` (onnxruntime + the metadata podium wrote), ``OnnxBundle``
(the graphs of a mixed-preprocessing ensemble, ``runs.bundle.Bundle``, blended with their weights), ``open_exported``
(either, from a path) and ``predict_onnx_images`` (``podium predict --onnx FILE_OR_BUNDLE --images DIR``). The light
path for machines that only predict: this module imports onnxruntime, numpy, OpenCV and podium's numpy-only task
code, never torch."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from podium.core.errors import PodiumError
from podium.core.io import write_csv
from podium.data.pixels.images import decode_image, read_image  # training's decode: DICOM, 16-bit PNG/TIFF alike
from podium.inference.resize import METADATA_KEY, prepare
from podium.runs.bundle import Bundle  # torch-free: JSON only
from podium.runs.predictions import prediction_file  # torch-free: names only


class Answers:
    """What an exported model answers from its probabilities, shared by a graph and a bundle: labels with the run's
    decisions, per-image results and the prediction table. Subclasses set ``task``, ``classes``, ``decisions`` and
    ``prepare``."""

    task: Any
    classes: list[str]
    decisions: dict[str, Any]

    def prepare(self, img: np.ndarray) -> np.ndarray:
        """One model input of an HxWx3 uint8 RGB image."""
        raise NotImplementedError

    def prepare_bytes(self, data: bytes) -> np.ndarray:
        """Encoded image bytes as one model input (ValueError when they are no image)."""
        return self.prepare(decode_image(bytes(data)))

    def blank_batch(self) -> np.ndarray:
        """A batch of one black image, prepared (the server's warm-up)."""
        h, w = self.hw
        return self.prepare(np.zeros((h, w, 3), np.uint8))[None]

    @property
    def hw(self) -> tuple[int, int]:
        """The (first) input's (height, width)."""
        raise NotImplementedError

    def labels(self, probs: np.ndarray) -> list[str]:
        """The decoded label(s) of each row, with the run's decisions (thresholds, cut points)."""
        return self.task.decode(probs, self.decisions, self.classes)

    def results(self, probs: np.ndarray, top: int = 3) -> list[dict[str, Any]]:
        """Per row: the decision, the label set, every class probability and the ``top`` classes."""
        out = []
        chosen = self.task.onehot(self.task.predict(probs, self.decisions), len(self.classes))
        for p, label, on in zip(probs, self.labels(probs), chosen):
            order = np.argsort(-p)[:top]
            row = {"label": label, "labels": [c for c, yes in zip(self.classes, on) if yes],
                   "probs": {c: float(v) for c, v in zip(self.classes, p)},
                   "top": [{"class": self.classes[i], "prob": float(p[i])} for i in order]}
            row.update({k: float(v[0]) for k, v in self.task.columns(p[None]).items()})
            out.append(row)
        return out

    def table(self, ids: list[str], probs: np.ndarray) -> pd.DataFrame:
        """id, label(s), one probability column per class and the task's extra columns (as ``podium predict``)."""
        df = pd.DataFrame(probs, columns=self.classes)
        for name, values in self.task.columns(probs).items():
            df[name] = values
        from podium.tasks.submission import default_format  # numpy and pandas only

        df.insert(0, default_format(self.task, self.classes, ids).columns[1], self.labels(probs))
        df.insert(0, "id", ids)
        return df

class OnnxModel(Answers):
    """An ONNX graph written by ``podium export``: its session, classes, task, decisions and preprocessing."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        import onnxruntime as ort

        self.path = Path(path).expanduser().resolve()
        if not self.path.is_file():
            raise PodiumError(f"No ONNX model at {self.path}; write one with podium export RUN_DIR (a bundle is a "
                              "folder with bundle.json).")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own kinds for a bad file
            raise PodiumError(f"{self.path} cannot be loaded as an ONNX model ({type(e).__name__}).") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise PodiumError(f"{self.path} was not written by podium export (no {METADATA_KEY} metadata).")
        self.props = dict(props)
        self.prep: dict[str, Any] = json.loads(props[METADATA_KEY])
        self.classes: list[str] = json.loads(props["podium.classes"])
        self.decisions: dict[str, Any] = json.loads(props.get("podium.decisions", "{}"))
        self.input_name = self.session.get_inputs()[0].name
        from podium.tasks.task import get_task  # numpy only

        self.task = get_task(props["podium.task"])

    @property
    def info(self) -> dict[str, Any]:
        """What the model is: classes, task, metric, CV score, model, members, preprocessing."""
        p = self.props
        return {"classes": self.classes, "task": self.task.name, "metric": p.get("podium.metric"),
                "cv_score": json.loads(p.get("podium.cv_score", "null")), "model": p.get("podium.model"),
                "source": p.get("podium.source"), "members": json.loads(p.get("podium.members", "[]")),
                "decisions": self.decisions, "precision": p.get("podium.precision"),
                "tta": json.loads(p.get("podium.tta", "{}")), "preprocessing": self.prep,
                "file": self.path.name}

    @property
    def hw(self) -> tuple[int, int]:
        """The input (height, width)."""
        return int(self.prep["height"]), int(self.prep["width"])

    def prepare(self, img: np.ndarray) -> np.ndarray:
        """An HxWx3 uint8 RGB image as one model input (podium's resize, ``podium.inference.resize``)."""
        return prepare(img, self.prep)

    @property
    def input_size(self) -> str:
        """The input size as HxW."""
        return "{}x{}".format(*self.hw)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (N, C) of prepared inputs (N, H, W, 3) uint8."""
        x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2) if self.prep.get("layout") == "nchw" else batch)
        return self.session.run(None, {self.input_name: x})[0].astype(np.float64)

class OnnxBundle(Answers):
    """A bundle written by ``podium export`` for an ensemble whose members prepare images differently: one
    ``OnnxModel`` per preprocessing group (``graphs``), blended with the graphs' weights (a probability mean, as the
    ensemble's ``mean`` and ``weights`` blends), then decoded with the ensemble's decisions.

    One prepared input is every graph's own input (each graph's size and resize, from one decoded image) flattened
    and concatenated, so a batch is still one uint8 array (N, sum of the graphs' H*W*3) that the server's
    micro-batcher stacks and splits as it does a single graph's."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        bundle = Bundle(path)
        self.path = bundle.path
        self.manifest = bundle.read()
        self.graphs = [OnnxModel(p, threads) for p in bundle.graph_paths(self.manifest)]
        weights = np.array([float(g["weight"]) for g in self.manifest["graphs"]], dtype=np.float64)
        self.weights = weights / weights.sum()
        self.classes = list(self.manifest["classes"])
        self.decisions = dict(self.manifest.get("decisions") or {})
        for graph in self.graphs:
            if graph.classes != self.classes:
                raise PodiumError(f"{graph.path} predicts classes other than {bundle.manifest_path} names; copy the "
                                  "whole bundle folder from one export.")
        from podium.tasks.task import get_task  # numpy only

        self.task = get_task(self.manifest["task"])
        self.sizes = [g.hw[0] * g.hw[1] * 3 for g in self.graphs]

    @property
    def info(self) -> dict[str, Any]:
        """What the bundle is: the keys of a single graph's ``info`` (``tta`` and ``preprocessing`` one per graph),
        with ``graphs``: each graph's file, weight, input and TTA."""
        m = self.manifest
        return {"classes": self.classes, "task": self.task.name, "metric": m.get("metric"),
                "cv_score": m.get("cv_score"), "model": m.get("model"), "source": m.get("source"),
                "members": [e for g in m["graphs"] for e in g["members"]], "decisions": self.decisions,
                "precision": m.get("precision"), "preprocessing": [g.prep for g in self.graphs],
                "tta": [g.get("tta", {}) for g in m["graphs"]],
                "graphs": [{k: g[k] for k in ("file", "weight", "input", "tta") if k in g} for g in m["graphs"]],
                "file": self.path.name}

    @property
    def hw(self) -> tuple[int, int]:
        """The first graph's input (height, width)."""
        return self.graphs[0].hw

    @property
    def input_size(self) -> str:
        """Every graph's input size, HxW joined by +."""
        return "+".join(g.input_size for g in self.graphs)

    def prepare(self, img: np.ndarray) -> np.ndarray:
        """An HxWx3 uint8 RGB image as every graph's input (its size and resize), flattened and concatenated."""
        return np.concatenate([g.prepare(img).reshape(-1) for g in self.graphs])

    def split(self, batch: np.ndarray) -> list[np.ndarray]:
        """Prepared inputs (N, sum of sizes) as each graph's batch (N, H, W, 3)."""
        cuts = np.cumsum(self.sizes)[:-1]
        return [part.reshape(len(batch), *g.hw, 3) for g, part in zip(self.graphs, np.split(batch, cuts, axis=1))]

    def blend(self, per_graph: list[np.ndarray]) -> np.ndarray:
        """The graphs' probabilities (each N, C) averaged with the graphs' weights."""
        return np.tensordot(self.weights, np.stack(per_graph), axes=1)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (N, C) of prepared inputs (N, sum of the graphs' H*W*3) uint8."""
        return self.blend([g.probabilities(x) for g, x in zip(self.graphs, self.split(batch))])


Exported = OnnxModel | OnnxBundle  # what podium serve and predict --onnx run


def open_exported(path: str | Path, threads: int = 0) -> OnnxModel | OnnxBundle:
    """What ``podium export`` wrote at ``path``: a bundle folder (with bundle.json) or an ONNX file."""
    if Path(path).expanduser().is_dir() and Bundle.is_bundle(path):
        return OnnxBundle(path, threads)
    return OnnxModel(path, threads)


def predict_onnx_images(onnx: str | Path, images: str | Path, out: str | Path | None = None, batch_size: int = 32,
                        threads: int = 0) -> Path:
    """Every image below ``images`` through the exported model -> a CSV of ids, labels and class probabilities
    (``out``, default ``predictions-<folder>.csv`` beside the model). Unreadable images stop it in one line."""
    from podium.data.folders.files import list_images  # OpenCV and PIL only

    model = open_exported(onnx, threads)
    folder = Path(images).expanduser().resolve()
    ids, paths = list_images(folder)
    probs = []
    for start in range(0, len(paths), batch_size):
        batch = []
        for p in paths[start:start + batch_size]:
            try:
                batch.append(model.prepare(read_image(p)))
            except ValueError as e:  # a file the check could read but OpenCV and PIL cannot decode
                raise PodiumError(f"{os.path.relpath(p, folder)} {e}; remove it or replace it.") from None
        probs.append(model.probabilities(np.stack(batch)))
    target = Path(out) if out else model.path.parent / prediction_file(folder.name)
    write_csv(target, model.table(ids, np.concatenate(probs)))
    return target
