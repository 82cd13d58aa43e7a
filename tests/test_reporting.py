"""report.html: built from a run folder alone, every section and plot on single-label, multilabel and ordinal runs,
Grad-CAM on a CNN and a ViT, and the page rendered in a real (headless) browser."""

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
from podium.config import PodiumConfig, merge
from podium.models.preprocessing import Preprocessing
from podium.pipeline import train
from podium.reporting import SECTIONS, build_report, plots
from podium.reporting.gradcam import Unsupported, cam_target, grad_cam
from podium.runs.run import Run

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


@pytest.fixture(scope="module")
def single_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("single")
    return _train(datagen.csv_single(root / "data"), root / "runs", "run.report=true")


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


def test_multilabel_report_shows_roc_and_threshold_but_no_confusion_matrix(multilabel_dir: Path,
                                                                           tiny: tuple[str, ...]) -> None:
    run = train(multilabel_dir, merge(PodiumConfig(), [*tiny, "train.epochs=2"]))
    images = _images(build_report(run).read_text())
    assert {"ROC curves", "threshold", "top losses", "Grad-CAM", "learning rate"} <= set(images)
    assert "confusion" not in images


def test_ordinal_report_has_a_confusion_matrix_over_the_grades(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    data = datagen.folders(tmp_path / "grades", per_class=8, classes=("0", "1", "2", "3", "4"))
    run = train(data, merge(PodiumConfig(), [*tiny, "data.task=ordinal"]))
    page = build_report(run).read_text()
    images = _images(page)
    assert {"confusion", "ROC curves", "top losses", "Grad-CAM"} <= set(images) and "qwk" in page
    assert "could not be built" not in page


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
               plots.threshold_curve(np.array([0.1, 0.5, 0.9]), np.array([0.2, 0.6, 0.3]), 0.5, "sample_f1")]
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
    target = cam_target(model, size)
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
        cam_target(model, 8)


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
