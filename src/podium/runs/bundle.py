"""``Bundle``: the owner of an export bundle folder, what ``podium export`` writes for an ensemble whose members
prepare images differently (input size, resize method, mean/std, image ops). One ONNX graph cannot take two input
sizes, so the members are grouped by preprocessing and each group becomes one graph; the blend of the graphs and the
decisions live in the manifest.

```
<bundle>/                  default: <ensemble folder>/export/bundle (Run.bundle_path); --out DIR elsewhere
  bundle.json              the manifest: format, classes, task, decisions, blend, each graph's file, weight,
                           members, input (size, resize) and TTA views; the parity summary
  graph0.onnx, graph1.onnx one podium graph per preprocessing group (uint8 in, the group's blended probabilities
                           out), each with its own preprocessing metadata as a single export has
```

The bundle's probabilities are the graphs' probabilities averaged with the graphs' weights (each graph's weight is
the sum of its members' blend weights), which is exactly the ensemble's probability-mean blend. The folder is built
beside its destination and moved into place whole (``install``), so a reader never sees half a bundle. This module
reads and writes JSON only (no torch, no onnxruntime): the torch-free runtime (``podium.inference.onnx``) reads it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from podium.core.errors import PodiumError
from podium.core.io import write_json
from podium.runs.files import read_json

MANIFEST = "bundle.json"
FORMAT = "podium.bundle/1"
GRAPH_KEYS = ("file", "weight", "members", "input")


class Bundle:
    """An export bundle folder (see the module docstring): the only code that names, reads and writes its files."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()

    @staticmethod
    def is_bundle(path: str | Path) -> bool:
        """Whether ``path`` is a folder with a bundle manifest."""
        return (Path(path).expanduser() / MANIFEST).is_file()

    @property
    def manifest_path(self) -> Path:
        """bundle.json."""
        return self.path / MANIFEST

    def graph_path(self, index: int) -> Path:
        """graph<index>.onnx: the graph of the index-th preprocessing group."""
        return self.path / f"graph{index}.onnx"

    def write_manifest(self, manifest: dict[str, Any]) -> Path:
        """bundle.json (atomically), stamped with the format; every graph it names must already be in the folder."""
        manifest = {"format": FORMAT, **manifest}
        _check(manifest, self.path)
        return write_json(self.manifest_path, manifest)

    def read(self) -> dict[str, Any]:
        """The manifest, checked: its format, and each graph's file present with a positive weight."""
        if not self.manifest_path.is_file():
            raise PodiumError(f"{self.path} is not a podium export bundle (no {MANIFEST}); write one with podium "
                              "export ENSEMBLE_DIR.")
        manifest = read_json(self.manifest_path, MANIFEST)
        _check(manifest, self.path)
        return manifest

    def graph_paths(self, manifest: dict[str, Any]) -> list[Path]:
        """The graph files the manifest names, in its order."""
        return [self.path / g["file"] for g in manifest["graphs"]]


def _check(manifest: dict[str, Any], folder: Path) -> None:
    """One line naming what is wrong with a manifest (a bundle copied in part, or from a newer podium)."""
    where = folder / MANIFEST
    if manifest.get("format") != FORMAT:
        raise PodiumError(f"{where} has format {manifest.get('format')!r}; this podium reads {FORMAT}. Export it "
                          "again with this podium.")
    graphs = manifest.get("graphs")
    if not isinstance(graphs, list) or not graphs:
        raise PodiumError(f"{where} names no graphs; export the ensemble again.")
    for i, graph in enumerate(graphs):
        missing = [k for k in GRAPH_KEYS if k not in graph]
        if missing:
            raise PodiumError(f"{where}: graphs[{i}] lacks {', '.join(missing)}; export the ensemble again.")
        if not (folder / graph["file"]).is_file():
            raise PodiumError(f"{where} names {graph['file']}, which is not in {folder}; copy the whole bundle folder.")
        if not float(graph["weight"]) > 0:
            raise PodiumError(f"{where}: graphs[{i}] has weight {graph['weight']}; weights must be positive.")
    for key in ("classes", "task"):
        if key not in manifest:
            raise PodiumError(f"{where} lacks {key!r}; export the ensemble again.")


def staging(target: Path) -> tempfile.TemporaryDirectory:
    """A temporary folder beside ``target`` to build a bundle in (removed when the export fails)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=target.parent, prefix=".bundle-")


def install(built: Path, target: Path) -> Bundle:
    """Move the finished bundle folder ``built`` to ``target``, replacing an earlier bundle there (each step a
    rename; a folder at ``target`` that is not a bundle is refused, never deleted)."""
    if target.exists() and not Bundle.is_bundle(target):
        raise PodiumError(f"--out {target} exists and is not a podium bundle; give a new folder name.")
    old = None
    if target.exists():
        old = built.parent / f"{built.name}.old"
        os.replace(target, old)
    os.replace(built, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return Bundle(target)
