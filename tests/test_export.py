"""podium export: the graph's decoders and resize helper against podium's own code, parity for every task and for a
two-run ensemble at batch 1 and 7, TTA inside the graph, fp16 and int8, and bad input refused in one line with
nothing written. ``podium predict --onnx`` runs without importing torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("onnxruntime", reason="pip install 'podium[deploy]'")
pytest.importorskip("onnxscript", reason="pip install 'podium[deploy]'")

import datagen  # noqa: E402
import podium
from podium.core.errors import PodiumError
from podium.data.pixels.cache import shrink as cache_shrink
from podium.data.pixels.preprocessing import Preprocessing
from podium.data.training.transforms import create_transform
from podium.deploy.graph import DECODERS
from podium.inference.onnx import OnnxModel, predict_onnx_images
from podium.inference.resize import load_rgb, prepare
from podium.tasks.task import get_task

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny runs of every task (multiclass, binary, multilabel, ordinal) and a second multilabel run on the same
    folds, for an ensemble."""
    from accelerate.state import AcceleratorState, GradientState

    tmp = tmp_path_factory.mktemp("export")
    base = (*datagen.TINY, f"run.root={tmp / 'runs'}")
    data = {
        "multiclass": (datagen.csv_single(tmp / "mc"), []),
        "binary": (datagen.csv_single(tmp / "bin", classes=("neg", "pos")), ["predict.binary_threshold=f1"]),
        "multilabel": (datagen.csv_multilabel(tmp / "ml"), []),
        "ordinal": (datagen.folders(tmp / "ord", per_class=6, classes=("0", "1", "2", "3"), test=5),
                    ["data.task=ordinal"]),
    }
    out: dict[str, Path] = {}
    for task, (where, extra) in data.items():
        out[task] = podium.train(where, overrides=[*base, f"run.name={task}", *extra]).path
        out[f"{task}_data"] = where
    out["multilabel_b"] = podium.train(data["multilabel"][0], overrides=[*base, "run.name=mlb", "train.lr=0.003"]).path
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return out


def _test_folder(data: Path) -> Path:
    for name in ("test_images", "test"):
        if (data / name).is_dir():
            return data / name
    raise AssertionError(data)


def _podium_probs(run: Path, images: Path, classes: list[str], tta: list[str] | None) -> pd.DataFrame:
    table = podium.predict(run, images=images, tta=tta)
    return table.set_index("id")[classes]


@pytest.mark.parametrize("key", sorted(DECODERS.names()))
def test_each_decoder_matches_the_tasks_numpy_probabilities(key: str) -> None:
    name, coding = key.split("/")
    k = 2 if name == "binary" else 5
    task = get_task(name).for_loss(coding if name == "ordinal" else "auto", k)
    logits = np.random.default_rng(0).normal(0, 3, (64, task.outputs(k))).astype(np.float32)
    logits[:4, 0] = [-1.0, 0.0, 4.0, 9.0]  # regression: below 0, a whole grade, the top grade, above it
    ours = DECODERS.get(key)(torch.from_numpy(logits), k).numpy()
    assert np.allclose(ours, task.probabilities(logits), atol=1e-6)


@pytest.mark.parametrize("resize", ["squash", "crop", "pad"])
@pytest.mark.parametrize("hw", [(32, 32), (24, 40)])
def test_resize_helper_matches_podiums_transform_pixel_for_pixel(resize: str, hw: tuple[int, int]) -> None:
    prep = Preprocessing(hw[0], resize, "bicubic", (0.5, 0.4, 0.3), (0.2, 0.2, 0.2), crop_pct=0.875,
                         width=hw[1] if hw[1] != hw[0] else 0)
    meta = {"height": hw[0], "width": hw[1], "resize": resize, "interpolation": "bicubic", "crop_pct": 0.875,
            "pad_fill": -1, "mean": [0.5, 0.4, 0.3], "cache_side": 50}
    rng = np.random.default_rng(1)
    transform = create_transform(prep)
    for shape in [(37, 53), (120, 80), (50, 50), (300, 41), (20, 31)]:
        img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        expected = transform(image=cache_shrink(img, 50))["image"]  # the cache's shrink, then the model's resize
        assert np.array_equal(prepare(img, meta), expected), shape


@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel", "ordinal"])
def test_export_parity_for_every_task_at_batch_1_and_7(runs: dict[str, Path], task: str) -> None:
    report = podium.export(runs[task])
    onnx = Path(report["path"])
    assert onnx == runs[task] / "export" / "model.onnx" and onnx.is_file()
    assert json.loads((runs[task] / "export" / "export.json").read_text())["passed"] is True
    parity = report["parity"]
    assert parity["max_abs_diff"] <= 1e-4 and parity["label_agreement"] == 1.0
    assert parity["metric_change"] == pytest.approx(0, abs=1e-9)
    assert parity["helper_pixels_equal"] == 1.0 and parity["batch1_vs_batch7_max_abs_diff"] <= 1e-5
    # each row through the fold that did not train on it: the saved OOF probabilities (oof.csv: the run's TTA)
    assert parity["oof_max_abs_diff"] <= 1e-4
    assert parity["cv_metric_onnx"] == pytest.approx(parity["cv_metric_saved_oof"], abs=1e-9)

    model = OnnxModel(onnx)
    run = podium.load(runs[task])
    assert model.classes == run.info["classes"] and model.task.name == task
    assert model.decisions == run.decisions and model.prep["layout"] == "nhwc"
    assert model.session.get_inputs()[0].shape == ["batch", 32, 32, 3]
    folder = _test_folder(runs[f"{task}_data"])
    expected = _podium_probs(runs[task], folder, model.classes, None)  # the run's TTA: the default export's too
    paths = sorted(p for p in folder.iterdir())[:7]
    x = np.stack([model.prepare(load_rgb(str(p))) for p in paths])
    seven = model.probabilities(x)
    ones = np.concatenate([model.probabilities(x[i:i + 1]) for i in range(len(x))])
    want = expected.loc[[p.relative_to(folder).as_posix() for p in paths]].to_numpy()
    assert np.abs(seven - want).max() <= 1e-4 and np.abs(ones - want).max() <= 1e-4
    assert model.labels(seven) == get_task(task).decode(want, run.decisions, model.classes)


def test_two_run_ensemble_is_one_graph_with_its_weights(runs: dict[str, Path]) -> None:
    ens = podium.ensemble(runs["multilabel"], runs["multilabel_b"], blend="weights", name="ens")
    report = podium.export(ens, out=ens.path / "ens.onnx")
    assert report["passed"] and report["parity"]["max_abs_diff"] <= 1e-4 and report["parity"]["label_agreement"] == 1
    assert "cv_metric_onnx" not in report["parity"]  # an ensemble's OOF is a cross-fitted blend, not per fold
    assert (ens.path / "ens.export.json").is_file()
    weights = [m["weight"] for m in ens.members["members"]]
    model = OnnxModel(ens.path / "ens.onnx")
    members = json.loads(model.props["podium.members"])
    assert [m["weight"] for m in members] == pytest.approx([w for w in weights if w > 0])
    assert model.decisions == ens.decisions
    csv = predict_onnx_images(ens.path / "ens.onnx", _test_folder(runs["multilabel_data"]), ens.path / "onnx.csv")
    table = pd.read_csv(csv)
    blended = pd.read_csv(ens.path / "test_predictions.csv")  # the ensemble's own test predictions (identity+hflip)
    assert list(table["id"]) == sorted(blended["id"]) and set(table.columns) >= set(model.classes)


def test_tta_and_fp16_and_int8(runs: dict[str, Path], tmp_path: Path) -> None:
    run = runs["multiclass"]
    tta = podium.export(run, out=tmp_path / "tta.onnx", tta=True)
    assert tta["parity"]["max_abs_diff"] <= 1e-4 and tta["parity"]["oof_max_abs_diff"] <= 1e-4  # against oof.csv
    model = OnnxModel(tmp_path / "tta.onnx")
    assert json.loads(model.props["podium.tta"])["views"] == ["identity", "hflip"]
    folder = _test_folder(runs["multiclass_data"])
    ours = pd.read_csv(predict_onnx_images(tmp_path / "tta.onnx", folder, tmp_path / "tta.csv")).set_index("id")
    theirs = _podium_probs(run, folder, model.classes, ["identity", "hflip"])
    assert np.abs(ours.loc[theirs.index, model.classes].to_numpy() - theirs.to_numpy()).max() <= 1e-4
    half = podium.export(run, out=tmp_path / "half.onnx", fp16=True)
    assert half["precision"] == "fp16" and half["parity"]["max_abs_diff"] <= half["tolerance"]
    int8 = podium.export(run, out=tmp_path / "int8.onnx", quantize="int8")
    assert int8["tolerance"] is None and "metric_change" in int8["parity"]
    assert int8["bytes"] < tta["bytes"] / 2


def test_default_export_answers_as_podium_predict_and_no_tta_says_how_far(runs: dict[str, Path], tmp_path: Path,
                                                                          cli) -> None:
    run, folder = runs["binary"], _test_folder(runs["binary_data"])
    report = podium.export(run, out=tmp_path / "default.onnx")
    saved = json.loads((tmp_path / "default.export.json").read_text())
    assert saved["tta"] is True and saved["tta_views"] == ["identity", "hflip"] and saved["tta_scales"] == [1.0]
    assert saved["predict_differs"] is None and "predict_max_abs_diff" not in saved["parity"]
    assert report["parity"]["max_abs_diff"] <= report["tolerance"]  # the parity images, against the run's TTA
    model = OnnxModel(tmp_path / "default.onnx")
    assert json.loads(model.props["podium.tta"])["views"] == ["identity", "hflip"]
    ours = pd.read_csv(predict_onnx_images(tmp_path / "default.onnx", folder, tmp_path / "d.csv")).set_index("id")
    theirs = _podium_probs(run, folder, model.classes, None)  # podium predict as the user runs it
    assert np.abs(ours.loc[theirs.index, model.classes].to_numpy() - theirs.to_numpy()).max() <= report["tolerance"]

    code, err = cli("export", str(run), "--no-tta", "--out", str(tmp_path / "plain.onnx"))
    assert code == 0, err
    plain = json.loads((tmp_path / "plain.export.json").read_text())
    assert plain["tta"] is False and plain["tta_views"] == ["identity"]
    assert json.loads(OnnxModel(tmp_path / "plain.onnx").props["podium.tta"])["views"] == ["identity"]
    differs = plain["predict_differs"]
    assert differs["reason"] == "--no-tta" and differs["predict_views"] == "identity+hflip"
    assert 0 < differs["max_abs_diff"] < 1 and 0 <= differs["labels_differ"] <= 1 and differs["images"] > 0
    assert differs["max_abs_diff"] == plain["parity"]["predict_max_abs_diff"]
    assert "podium predict differs" in differs["note"] and "\n" not in differs["note"]
    ours = pd.read_csv(predict_onnx_images(tmp_path / "plain.onnx", folder, tmp_path / "p.csv")).set_index("id")
    theirs = _podium_probs(run, folder, model.classes, ["identity"])
    assert np.abs(ours.loc[theirs.index, model.classes].to_numpy() - theirs.to_numpy()).max() <= 1e-4


def test_members_with_different_tta_get_the_plain_graph_and_the_difference(runs: dict[str, Path]) -> None:
    from podium.deploy.build import graph_views, load_source, with_views
    from podium.deploy.parity import parity_data
    from podium.deploy.writer import _predict_differs

    ens = podium.ensemble(runs["multilabel"], runs["multilabel_b"], blend="mean", name="ens_tta")
    source = load_source(ens.path)
    assert graph_views(source, True) == (("identity", "hflip"), (1.0,)) and len(source.checkpoints) == 2
    source.checkpoints[-1] = [with_views(c, (("identity", "vflip"), (1.0,))) for c in source.checkpoints[-1]]
    assert graph_views(source, True) == (("identity",), (1.0,))  # one graph runs one set: the plain image
    data = parity_data(source, 8, True)
    assert data.predict_probs is not None and np.abs(data.predict_probs - data.probs).max() > 0
    differs = _predict_differs(source, True, {"predict_max_abs_diff": 0.04, "predict_labels_differ": 0.06,
                                              "images": 8})
    assert "different TTA views" in differs["reason"] and differs["predict_views"] == "identity+hflip; identity+vflip"
    assert "4.00e-02" in differs["note"] and "6.0% of labels" in differs["note"]


def test_bad_exports_are_one_line_and_write_nothing(runs: dict[str, Path], tmp_path: Path, monkeypatch, cli) -> None:
    run = runs["binary"]
    with pytest.raises(PodiumError, match="--folds 7"):
        podium.export(run, out=tmp_path / "x.onnx", folds="7")
    with pytest.raises(PodiumError, match="--quantize int4"):
        podium.export(run, out=tmp_path / "x.onnx", quantize="int4")
    import podium.deploy.writer as writer

    real = writer.check_parity
    monkeypatch.setattr(writer, "check_parity", lambda *a: {**real(*a), "max_abs_diff": 0.5})
    code, err = cli("export", str(run), "--out", str(tmp_path / "bad.onnx"))
    assert code == 2 and "ONNX parity failed" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no graph, no report, no temporary folder
    rank = podium.ensemble(runs["multilabel"], runs["multilabel_b"], blend="rank_mean", name="rank")
    with pytest.raises(PodiumError, match="blends with rank_mean"):
        podium.export(rank)


def test_cli_export_then_predict_onnx_without_torch(runs: dict[str, Path], tmp_path: Path, cli) -> None:
    run = runs["ordinal"]
    code, err = cli("export", str(run), "--folds", "1", "--out", str(tmp_path / "fold1.onnx"))
    assert code == 0, err
    assert json.loads((tmp_path / "fold1.export.json").read_text())["folds"] == [[1]]
    images, out = _test_folder(runs["ordinal_data"]), tmp_path / "pred.csv"
    script = ("import sys\nfrom podium.cli import main\n"
              f"sys.argv = ['podium', 'predict', '--onnx', {str(tmp_path / 'fold1.onnx')!r}, '--images', "
              f"{str(images)!r}, '--out', {str(out)!r}]\n"
              "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
              "assert 'torch' not in sys.modules, 'torch was imported'\nprint('no torch')\n")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and "no torch" in done.stdout, done.stderr[-2000:]
    table = pd.read_csv(out, dtype={"label": str})
    assert len(table) == 5 and {"id", "label", "score", "0", "3"} <= set(table.columns)
    code, err = cli("predict", "--onnx", str(tmp_path / "missing.onnx"), "--images", str(images))
    assert code == 2 and "No ONNX model" in err


def test_export_refuses_a_run_without_a_finished_fold(runs: dict[str, Path], tmp_path: Path, cli) -> None:
    half = datagen.unfinished(runs["binary"], tmp_path / "half")  # best.pt is there, as training left it
    code, err = cli("export", str(half), "--out", str(tmp_path / "half.onnx"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "has no finished fold to export" in err and f"podium resume {half}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half"] and not (half / "export").exists()
