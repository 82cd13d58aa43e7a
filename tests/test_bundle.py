"""Mixed-size ensembles leave podium: two members at different input sizes and resize methods exported as a bundle
(one graph per preprocessing, bundle.json), checked for parity, predicted with ``podium predict --onnx`` and served,
against ``podium predict`` of the ensemble; serving the bundle never imports torch; a damaged bundle is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("onnxruntime", reason="pip install 'podium[deploy]'")
pytest.importorskip("onnxscript", reason="pip install 'podium[deploy]'")
pytest.importorskip("fastapi", reason="pip install 'podium[deploy]'")

import datagen  # noqa: E402
import podium
from podium.core.errors import PodiumError
from podium.inference.onnx import OnnxBundle, open_exported
from podium.runs.bundle import Bundle

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An ensemble (mean blend) of test_resnet at 32 px squashed and test_efficientnet at 48 px padded, on the same
    folds, and its default export (a bundle)."""
    from accelerate.state import AcceleratorState, GradientState

    tmp = tmp_path_factory.mktemp("bundle")
    data = datagen.csv_single(tmp / "data")
    base = (*datagen.TINY, f"run.root={tmp / 'runs'}")
    small = podium.train(data, overrides=[*base, "run.name=small"]).path
    large = podium.train(data, overrides=[*base, "run.name=large", "model.name=test_efficientnet",
                                          "model.img_size=48", "model.resize=pad"]).path
    ens = podium.ensemble(small, large, blend="mean", name="mixed", root=tmp / "runs").path
    podium.export(ens)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return {"data": data, "ensemble": ens, "bundle": ens / "export" / "bundle", "tmp": tmp}


def test_mixed_ensemble_exports_a_bundle_with_parity(mixed: dict[str, Path]) -> None:
    bundle = mixed["bundle"]
    assert Bundle.is_bundle(bundle) and not (mixed["ensemble"] / "export" / "model.onnx").exists()
    manifest = Bundle(bundle).read()
    graphs = manifest["graphs"]
    assert [g["file"] for g in graphs] == ["graph0.onnx", "graph1.onnx"]
    assert [(g["input"]["shape"][1:3], g["input"]["resize"]) for g in graphs] == [([32, 32], "squash"),
                                                                                 ([48, 48], "pad")]
    assert [g["weight"] for g in graphs] == [1.0, 1.0] and [len(g["members"]) for g in graphs] == [1, 1]
    assert manifest["classes"] == ["cat", "dog", "fox"] and manifest["task"] == "multiclass"
    assert manifest["parity"]["max_abs_diff"] <= 1e-4 and manifest["parity"]["label_agreement"] == 1
    report = json.loads((mixed["ensemble"] / "export" / "export.json").read_text())
    assert report["bundle"] is True and report["passed"] and report["path"] == str(bundle)
    parity = report["parity"]
    assert parity["max_abs_diff"] <= 1e-4 and parity["helper_max_abs_diff"] <= 1e-4
    assert parity["helper_pixels_equal"] == 1.0 and parity["batch1_vs_batch7_max_abs_diff"] <= 1e-5
    assert all(g["parity"]["max_abs_diff"] <= 1e-4 for g in report["graphs"])
    assert report["predict_differs"] is None and report["tta_views"] == ["hflip", "identity"]


def test_predict_onnx_bundle_answers_as_podium_predict(mixed: dict[str, Path], cli) -> None:
    images, out = mixed["data"] / "test_images", mixed["tmp"] / "bundle.csv"
    code, err = cli("predict", "--onnx", str(mixed["bundle"]), "--images", str(images), "--out", str(out))
    assert code == 0, err
    ours = pd.read_csv(out).set_index("id")
    theirs = podium.predict(mixed["ensemble"], images=images).set_index("id")  # the members at their own sizes
    classes = ["cat", "dog", "fox"]
    assert len(ours) == 12 and list(ours.index) == list(theirs.index)
    assert np.abs(ours[classes].to_numpy() - theirs[classes].to_numpy()).max() <= 1e-4
    assert list(ours["label"]) == list(theirs["label"])


def test_serving_a_bundle(mixed: dict[str, Path]) -> None:
    from fastapi.testclient import TestClient

    from podium.serving.app import create_app
    from podium.serving.server import load_model

    model = load_model(mixed["ensemble"])  # the ensemble folder serves its export/bundle
    assert isinstance(model, OnnxBundle) and model.input_size == "32x32+48x48"
    files = sorted((mixed["data"] / "test_images").iterdir())[:3]
    with TestClient(create_app(model)) as client:
        r = client.post("/predict", files=[("files", (p.name, p.read_bytes(), "image/png")) for p in files])
        assert r.status_code == 200, r.text
        info = client.get("/info").json()
        metrics = client.get("/metrics").text
    want = podium.predict(mixed["ensemble"], images=mixed["data"] / "test_images").set_index("id")
    got = {x["name"]: x for x in r.json()["results"]}
    for p in files:
        probs = [got[p.name]["probs"][c] for c in model.classes]
        assert np.abs(np.array(probs) - want.loc[_id(want, p), model.classes].to_numpy(float)).max() <= 1e-4
        assert got[p.name]["label"] == want.loc[_id(want, p), "label"]
    assert [g["input"]["resize"] for g in info["graphs"]] == ["squash", "pad"] and len(info["members"]) == 2
    assert 'input_size="32x32+48x48"' in metrics


def test_serving_a_bundle_never_imports_torch(mixed: dict[str, Path]) -> None:
    image = cv2.imencode(".png", datagen.class_image(1, np.random.default_rng(0)))[1].tobytes()
    script = ("import sys\nimport podium.cli\nfrom fastapi.testclient import TestClient\n"
              "from podium.serving.server import load_model\nfrom podium.serving.app import create_app\n"
              f"model = load_model({str(mixed['bundle'])!r})\n"
              f"files = [('files', ('a.png', {image!r}, 'image/png'))]\n"
              "with TestClient(create_app(model)) as c:\n"
              "    r = c.post('/predict', files=files)\n"
              "    assert r.status_code == 200 and r.json()['results'][0]['label'], r.text\n"
              "assert 'torch' not in sys.modules, 'torch was imported'\nprint('no torch')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(SRC)})
    assert done.returncode == 0 and "no torch" in done.stdout, done.stderr[-2000:]


def test_bundle_errors_are_one_line(mixed: dict[str, Path], tmp_path: Path, cli) -> None:
    with pytest.raises(PodiumError, match="bundle folder"):
        podium.export(mixed["ensemble"], out=tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(PodiumError, match="is not a podium bundle"):  # before any graph is built
        podium.export(mixed["ensemble"], out=taken)
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "bundle.json").write_text((mixed["bundle"] / "bundle.json").read_text())
    (copy / "graph0.onnx").write_bytes((mixed["bundle"] / "graph0.onnx").read_bytes())
    code, err = cli("predict", "--onnx", str(copy), "--images", str(mixed["data"] / "test_images"))
    assert code == 2 and "graph1.onnx" in err and "whole bundle" in err and len(err.strip().splitlines()) == 1
    manifest = json.loads((mixed["bundle"] / "bundle.json").read_text())
    (copy / "graph1.onnx").write_bytes(b"")
    (copy / "bundle.json").write_text(json.dumps({**manifest, "format": "podium.bundle/9"}))
    with pytest.raises(PodiumError, match="podium.bundle/9"):
        open_exported(copy)


def _id(table: pd.DataFrame, path: Path) -> str:
    """A predicted image's id in ``table`` (podium predict keeps the extension where names would clash)."""
    return path.name if path.name in table.index else path.stem


def test_cli_export_to_a_folder_and_install_replaces_only_a_bundle(mixed: dict[str, Path], tmp_path: Path,
                                                                   cli) -> None:
    import shutil

    from podium.runs.bundle import install, staging

    out = tmp_path / "leaf"
    code, err = cli("export", str(mixed["ensemble"]), "--out", str(out))
    assert code == 0, err
    assert Bundle(out).read()["source"] == mixed["ensemble"].name
    assert json.loads((tmp_path / "leaf.export.json").read_text())["bundle"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leaf", "leaf.export.json"]  # no staging folder left
    with staging(out) as tmp:
        built = shutil.copytree(mixed["bundle"], Path(tmp) / "bundle")
        (built / "marker").write_text("new")
        install(built, out)  # an earlier bundle is replaced whole
    assert (out / "marker").read_text() == "new" and Bundle(out).read()["graphs"]
    other = tmp_path / "notes"
    other.mkdir()
    with staging(other) as tmp, pytest.raises(PodiumError, match="is not a podium bundle"):
        install(shutil.copytree(mixed["bundle"], Path(tmp) / "bundle"), other)
    assert other.is_dir() and not list(other.iterdir())


@pytest.mark.slow  # two more trainings and an export: a minute on two shared cores
def test_a_binary_bundle_decides_with_the_ensembles_threshold(tmp_path: Path) -> None:
    from podium.inference.onnx import predict_onnx_images

    data = datagen.csv_single(tmp_path / "bin", n=32, classes=("neg", "pos"), n_test=8)
    base = (*datagen.TINY, f"run.root={tmp_path / 'runs'}", "predict.binary_threshold=f1")
    small = podium.train(data, overrides=[*base, "run.name=small"]).path
    large = podium.train(data, overrides=[*base, "run.name=large", "model.img_size=40x48", "model.resize=crop"]).path
    ens = podium.ensemble(small, large, blend="mean", name="bin", root=tmp_path / "runs")
    report = podium.export(ens, out=tmp_path / "bundle")
    assert report["bundle"] and report["parity"]["max_abs_diff"] <= 1e-4
    model = open_exported(tmp_path / "bundle")
    assert model.decisions == ens.decisions and "threshold" in model.decisions
    images = data / "test_images"
    ours = pd.read_csv(predict_onnx_images(tmp_path / "bundle", images, tmp_path / "p.csv")).set_index("id")
    theirs = podium.predict(ens.path, images=images).set_index("id")
    assert np.abs(ours[["neg", "pos"]].to_numpy() - theirs[["neg", "pos"]].to_numpy()).max() <= 1e-4
    assert list(ours["label"]) == list(theirs["label"])
