"""report.html: built from a run folder alone, every section and plot on single-label, binary, multilabel and ordinal
runs (each task's fitted decisions drawn as the task says), images shown through the run's preprocessing, Grad-CAM
on a CNN and a ViT, and the page rendered in a real (headless) browser."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from PIL import Image

import datagen
import podium
from podium.config import PodiumConfig, PredictConfig, merge, shown_precision
from podium.data.pixels.preprocessing import Preprocessing
from podium.pipeline import train
from podium.reporting import SECTIONS, build_report, plots
from podium.reporting.gradcam import Unsupported, cam_target, grad_cam
from podium.runs.run import Run
from podium.tasks.task import get_task
from podium.tasks.thresholds import DecisionCurve

IMG = re.compile(r'<img alt="([^"]*)" src="([^"]*)"')


def _train(data: Path, root: Path, *extra: str) -> Run:
    return train(data, merge(PodiumConfig(), [*datagen.TINY, f"run.root={root}", "train.epochs=2", *extra]))


def _images(page: str) -> dict[str, Image.Image]:
    """Every <img> of the page, decoded (each must be an inline PNG)."""
    out = {}
    for alt, src in IMG.findall(page):
        assert src.startswith("data:image/png;base64,"), f"{alt}: not an inline PNG"
        out[alt] = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        out[alt].load()
    return out


def _same_channels(image: Image.Image) -> bool:
    a = np.asarray(image.convert("RGB"))
    return bool((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all())


@pytest.fixture(scope="module")
def single_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("single")
    return _train(datagen.csv_single(root / "data"), root / "runs", "run.report=true")


@pytest.fixture(scope="module")
def gray_binary_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A binary run with a fitted F1 threshold, trained on gray-preprocessed images of coloured data."""
    root = tmp_path_factory.mktemp("binary")
    data = datagen.csv_single(root / "data", classes=("cat", "dog"))
    # aug.ops without color: its hue jitter moves a gray pixel's channels apart by a rounding step
    run = _train(data, root / "runs", "train.epochs=1", "data.preprocess=gray", "predict.binary_threshold=f1",
                 "aug.ops=random_resized_crop,hflip,affine")
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)  # a module fixture outlives the per-test reset
    GradientState._reset_state()
    return run


def test_training_writes_the_report_and_it_is_rebuilt_from_the_folder_alone(single_run: Run, monkeypatch) -> None:
    page = single_run.report_path.read_text()
    assert "could not be built" not in page and "lr.csv" not in page
    for anchor, title in SECTIONS:
        assert f'id="{anchor}"' in page and title in page
    images = _images(page)
    assert {"class counts", "augmentation preview", "learning rate", "training curves", "confusion", "ROC curves",
            "top losses", "Grad-CAM"} <= set(images)
    assert "threshold" not in images  # no decision was fitted on a multiclass run
    assert images["augmentation preview"].width > 600 and images["Grad-CAM"].height > 150
    lr = single_run.lr_log(0)  # the schedule actually used: one row per optimiser update, every epoch
    assert list(lr["epoch"].unique()) == [1, 2] and lr["step"].tolist() == list(range(len(lr)))

    def no_training(*args, **kwargs):
        raise AssertionError("the report must not train")

    monkeypatch.setattr("podium.pipeline.fit_fold", no_training)
    monkeypatch.setattr("podium.engine.fold.fit_fold", no_training)
    single_run.report_path.unlink()
    path = podium.report(single_run.path)
    assert path == single_run.report_path and set(_images(path.read_text())) == set(images)


def test_device_and_precision_say_fp32_not_accelerates_no(single_run: Run) -> None:
    """Accelerate's word for no mixed precision is "no"; train.log (as the console) and the report say fp32."""
    assert shown_precision("no") == "fp32" and shown_precision("bf16") == "bf16" and shown_precision("fp16") == "fp16"
    log = (single_run.path / "train.log").read_text()
    assert "device cpu, precision fp32" in log and "precision no" not in log
    page = single_run.report_path.read_text()
    assert "<td>device</td><td style='text-align:left'>cpu fp32</td>" in page


def test_report_command_and_a_failing_report_does_not_fail_the_run(single_dir: Path, tiny: tuple[str, ...],
                                                                    monkeypatch, capsys) -> None:
    def broken(run, reporter=None):
        raise RuntimeError("no plots today")

    monkeypatch.setattr("podium.reporting.build_report", broken)
    run = train(single_dir, merge(PodiumConfig(), [*tiny, "run.report=true"]))
    assert run.status == "done" and not run.report_path.exists()
    assert "the report could not be written (RuntimeError: no plots today)" in run.log_path.read_text()
    monkeypatch.undo()
    from typer.testing import CliRunner

    from podium.cli import app

    result = CliRunner().invoke(app, ["report", str(run.path)])
    assert result.exit_code == 0 and run.report_path.is_file()


@pytest.mark.parametrize("mode", ["global", "per_class"])
def test_multilabel_report_shows_roc_and_threshold_but_no_confusion_matrix(multilabel_dir: Path,
                                                                           tiny: tuple[str, ...], mode: str) -> None:
    run = train(multilabel_dir, merge(PodiumConfig(), [*tiny, "train.epochs=2", f"predict.threshold_mode={mode}"]))
    page = build_report(run).read_text()
    images = _images(page)
    assert "could not be built" not in page  # per-class thresholds are a list, not one number
    assert {"ROC curves", "threshold", "top losses", "Grad-CAM", "learning rate"} <= set(images)
    assert "confusion" not in images and "score distribution" not in images
    assert "sample_f1_fitted" in page  # metrics.json decision_scores: plain decoding against the fitted decisions
    assert ("Per-class thresholds" in page) == (mode == "per_class")
    if mode == "per_class":  # a panel per class, each the sample F1 as that class's threshold moves
        assert images["threshold"].height > 2 * images["ROC curves"].height // 3


def test_binary_report_draws_the_fitted_threshold_rule(gray_binary_run: Run) -> None:
    assert "threshold" in gray_binary_run.decisions
    page = build_report(gray_binary_run).read_text()
    images = _images(page)
    assert "could not be built" not in page  # the threshold curve is the rule's F1, not log_loss at a threshold
    assert {"confusion", "ROC curves", "threshold", "score distribution"} <= set(images)
    assert "f1_fitted" in page and "accuracy_at_0.5" in page
    # data.preprocess=gray: the augmentation preview shows what the model saw, not the coloured files
    assert _same_channels(images["augmentation preview"]) and "preprocessing: gray" in page


def test_grad_cam_explains_the_images_the_model_saw(gray_binary_run: Run, monkeypatch) -> None:
    from podium.data.pixels.image_ops import ops_of
    from podium.data.training.dataset import ImageDataset
    from podium.data.training.transforms import create_transform
    from podium.reporting import sections
    from podium.reporting.gradcam import model_input

    seen, real = [], sections.grad_cam

    def spy(model, prep, images, classes, **kwargs):
        seen.append((prep, images))
        return real(model, prep, images, classes, **kwargs)

    monkeypatch.setattr(sections, "grad_cam", spy)
    inp = sections.gather(gray_binary_run)
    assert "Grad-CAM (" in sections.gradcam(inp) and seen
    paths = list(inp.paths.values())
    for prep, images in seen:
        assert prep.ops == ("gray",)
        evaluation = ImageDataset(paths, None, create_transform(prep), ops=ops_of(prep))  # as the fold validated
        expected = {evaluation.augmented(i)[1].tobytes() for i in range(len(paths))}
        shown = model_input(images, prep)[1]
        assert all(s.tobytes() in expected for s in shown)


def test_each_task_says_what_its_decision_view_is() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p1 = np.clip(0.3 * y + 0.7 * rng.random(200), 0, 1)
    binary, probs = get_task("binary"), np.stack([1 - p1, p1], axis=1)
    ys = (rng.random((200, 4)) < 0.3).astype(int)
    ps = np.clip(0.4 * ys + 0.6 * rng.random((200, 4)), 0, 1)
    grades = rng.integers(0, 5, 200)
    ordinal = get_task("ordinal").for_loss("ce", 5)
    grade_probs = ordinal.probabilities(2 * np.eye(5)[grades] + rng.normal(0, 1, (200, 5)))
    cases = [(binary, y, probs, PredictConfig(binary_threshold="f1"), ["a", "b"], "f1_fitted", 1),
             (get_task("multilabel"), ys, ps, PredictConfig(), list("wxyz"), "sample_f1_fitted", 1),
             (get_task("multilabel"), ys, ps, PredictConfig(threshold_mode="per_class"), list("wxyz"),
              "sample_f1_fitted", 4),
             (ordinal, grades, grade_probs, PredictConfig(), list("01234"), "qwk_cut_points", 4)]
    for task, targets, p, predict, classes, fitted, panels in cases:
        decisions = task.fit_decisions(targets, p, predict)
        view = task.decision_view(targets, p, decisions, predict, classes)
        assert len(view.curves) == panels
        for curve in view.curves:  # at the value in use, each curve gives the fitted score of metrics.json
            at = curve.scores[np.flatnonzero(curve.values == curve.chosen)]
            assert at[0] == pytest.approx(task.decision_report(targets, p, decisions)[fitted])
        if view.score is not None:
            assert len(view.score) == len(targets) and list(view.cuts) == sorted(view.cuts)
        figures = [plots.decision_curves(view.curves, view.name)]
        if view.score is not None:
            truth = np.asarray(targets)
            figures.append(plots.score_distribution(view.score, truth, classes, view.cuts, view.plain_cuts,
                                                    view.score_name))
        for fig in figures:
            assert Image.open(io.BytesIO(plots.to_png(fig))).width > 200
    assert get_task("multiclass").decision_view(y, probs, {}, PredictConfig(), ["a", "b"]) is None


def test_ordinal_report_has_a_confusion_matrix_over_the_grades(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    data = datagen.folders(tmp_path / "grades", per_class=8, classes=("0", "1", "2", "3", "4"))
    run = train(data, merge(PodiumConfig(), [*tiny, "data.task=ordinal"]))
    page = build_report(run).read_text()
    images = _images(page)
    assert {"confusion", "ROC curves", "top losses", "Grad-CAM"} <= set(images) and "qwk" in page
    assert "could not be built" not in page
    # the fitted cut points: QWK as each moves, the score per true grade with the cuts, and rounding against them
    assert {"cut points", "score distribution"} <= set(images)
    assert "qwk_rounded" in page and "qwk_cut_points" in page and "cut_points" in run.decisions


def test_report_without_the_data_folder_says_why_images_are_missing(single_run: Run, tmp_path: Path) -> None:
    copy = Run(shutil.copytree(single_run.path, tmp_path / single_run.path.name))
    info = copy.info
    copy._update_info({**info, "data_dir": str(tmp_path / "gone")})
    page = build_report(copy).read_text()
    assert "could not be read" in page and "images are not shown" in page
    assert {"learning rate", "confusion", "ROC curves"} <= set(_images(page))


def test_plot_functions_draw_what_they_are_given() -> None:
    rng = np.random.default_rng(0)
    truth = np.eye(3, dtype=int)[rng.integers(0, 3, 60)]
    probs = np.clip(truth * 0.6 + rng.random((60, 3)) * 0.4, 0, 1)
    lr = pd.DataFrame({"epoch": [1, 1, 2, 2], "step": [0, 1, 2, 3], "lr": [1e-3, 8e-4, 5e-4, 1e-4]})
    log = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [0.9, 0.7], "accuracy": [0.5, 0.7],
                        "best": [True, True]})
    figures = [plots.class_counts(["a", "b", "c"], [10, 20, 5]),
               plots.image_sizes(np.array([10, 20]), np.array([5, 9])),
               plots.lr_schedule({0: lr}), plots.training_curves({0: log, 1: log}, "accuracy"),
               plots.confusion_matrix(truth.argmax(1), probs.argmax(1), ["a", "b", "c"]),
               plots.roc_curves(truth, probs, ["a", "b", "c"]),
               plots.decision_curves([DecisionCurve("threshold", "sample_f1", np.array([0.1, 0.5, 0.9]),
                                                    np.array([0.2, 0.6, 0.3]), 0.5, 0.5)], "threshold"),
               plots.score_distribution(probs[:, 1], truth.argmax(1), ["a", "b", "c"], [0.4], [0.5], "p(b)")]
    for fig in figures:
        png = Image.open(io.BytesIO(plots.to_png(fig)))
        assert png.width > 200 and np.asarray(png.convert("L")).std() > 10  # something is drawn
    grid = plots.image_grid([np.zeros((20, 30, 3), np.uint8), np.full((40, 40, 3), 255, np.uint8)],
                            ["black", "white\nsecond line"], cols=2, thumb=50)
    pixels = np.asarray(grid)
    assert grid.size == (2 * 56 + 6, 50 + 2 * 15 + 4 + 12) and pixels.min() == 0


@pytest.mark.parametrize("name, size, layer, reshaped", [("test_resnet", 32, "layer4", False),
                                                         ("test_vit", 64, "blocks.4", True)])
def test_grad_cam_on_a_cnn_and_a_vit(name: str, size: int, layer: str, reshaped: bool) -> None:
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=3, **({"img_size": size} if reshaped else {}))
    target = cam_target(model, (size, size))
    assert target.name == layer and (target.reshape is not None) == reshaped
    prep = Preprocessing(size, "squash", "bilinear", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (48, 40, 3), dtype=np.uint8) for _ in range(3)]
    out = grad_cam(model, prep, images, [0, 1, 2])
    assert [o.shape for o in out] == [(size, size, 3)] * 3 and all(o.dtype == np.uint8 for o in out)
    plain = [np.asarray(Image.fromarray(i).resize((size, size))) for i in images]
    assert all(np.abs(o.astype(int) - p).mean() > 5 for o, p in zip(out, plain))  # a heatmap is overlaid


def test_grad_cam_names_an_unsupported_architecture() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    with pytest.raises(Unsupported, match="exposes no feature stages"):
        cam_target(model, (8, 8))


def test_report_renders_in_headless_chromium(single_run: Run, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    # The page has no script of its own; a copy gets one that counts images the browser failed to decode.
    probe = tmp_path / "probe.html"
    probe.write_text(single_run.report_path.read_text().replace(
        "</body>", "<script>window.onload = () => { const b = [...document.images].filter(i => !i.complete || "
                   "i.naturalWidth === 0).length; document.title = 'images ' + document.images.length + ' broken ' "
                   "+ b; }</script></body>"))
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'ud'}",
             "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([*flags, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()], capture_output=True,
                         text=True, timeout=120)
    title = re.search(r"<title>images (\d+) broken (\d+)</title>", dom.stdout)
    assert title is not None, dom.stderr[-2000:]
    assert int(title.group(1)) >= 8 and title.group(2) == "0"
    shot = tmp_path / "shot.png"
    result = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1400,2000",
                             single_run.report_path.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.is_file(), result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    assert console == []  # no console message: no script error, no failed resource
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2000, 1400) and pixels.std() > 20  # not a blank page
    assert (pixels < 100).mean() > 0.01  # dark text, plots and the header are drawn


@pytest.mark.parametrize("loss", ["cumulative", "ce", "regression"])
def test_grad_cam_on_every_ordinal_coding_bottom_to_top_grade(loss: str) -> None:
    from podium.tasks.task import get_task

    grades = 5
    task = get_task("ordinal").for_loss(loss, grades)
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=task.outputs(grades))
    prep = Preprocessing(32, "squash", "bilinear", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40, 40, 3), dtype=np.uint8) for _ in range(grades)]
    out = grad_cam(model, prep, images, list(range(grades)), task=task, num_classes=grades)  # grade 4 of 4 outputs
    assert [o.shape for o in out] == [(32, 32, 3)] * grades
    outputs = torch.arange(task.outputs(grades), dtype=torch.float32)
    scalars = [float(task.evidence(outputs, g, grades)) for g in range(grades)]
    assert len(scalars) == grades and all(np.isfinite(scalars))


def test_classes_are_shown_by_their_names_where_the_folder_names_them() -> None:
    """Cassava's label_num_to_disease_map.json: the report reads the names from run.json; the classes stay integers."""
    from podium.reporting.sections import Inputs

    inp = Inputs(None, None, {"class_names": {"0": "Cassava Bacterial Blight (CBB)"}}, None, ["0", "1"], None, None)
    assert inp.shown == ["0 (Cassava Bacterial Blight (CBB))", "1"] and inp.classes == ["0", "1"]
    assert Inputs(None, None, {}, None, ["a"], None, None).shown == ["a"]
