"""The upload page of podium serve in real headless Chromium (Debian's ``chromium``, driven by Playwright): choose an
image, and drop one, and see each one's label and top classes. Skips without chromium or Playwright."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="pip install 'podium[deploy]'")
pytest.importorskip("onnxscript", reason="pip install 'podium[deploy]'")
pytest.importorskip("fastapi", reason="pip install 'podium[deploy]'")

import datagen  # noqa: E402
import podium
import servers
from podium.inference.onnx import OnnxModel
from podium.serving.app import create_app

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> OnnxModel:
    from accelerate.state import AcceleratorState, GradientState

    tmp = tmp_path_factory.mktemp("browser")
    run = podium.train(datagen.csv_single(tmp / "data"), overrides=[*datagen.TINY, f"run.root={tmp / 'runs'}"])
    path = podium.export(run)["path"]
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return OnnxModel(path)


def test_upload_page_shows_each_images_label_in_chromium(model: OnnxModel, tmp_path: Path) -> None:
    if BROWSER is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    files = []
    for k in range(2):
        path = tmp_path / f"leaf{k}.png"
        cv2.imwrite(str(path), datagen.class_image(k, np.random.default_rng(k)))
        files.append(path)
    expected = model.labels(model.probabilities(np.stack([model.prepare_bytes(p.read_bytes()) for p in files])))
    with servers.running(create_app(model)) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=BROWSER, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/")
            assert "Drop images here" in page.inner_text("#drop")
            page.set_input_files("#files", [str(files[0])])  # choose a file
            page.wait_for_selector(".result .label", timeout=30_000)
            assert page.inner_text(".result .label") == expected[0]
            # drop a file onto the zone, as a user drags one from the desktop
            data = base64.b64encode(files[1].read_bytes()).decode()
            page.evaluate("""data => { const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
                const dt = new DataTransfer(); dt.items.add(new File([bytes], 'leaf1.png', {type: 'image/png'}));
                document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt,
                bubbles: true, cancelable: true})); }""", data)
            page.wait_for_function("document.querySelectorAll('.result').length === 2", timeout=30_000)
            labels = page.locator(".result .label").all_inner_texts()
            assert labels == [expected[1], expected[0]]  # the newest first
            assert "leaf1.png" in page.inner_text(".result .name") and page.locator(".result .bar").count() == 6
            assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
            page.screenshot(path=str(tmp_path / "page.png"))
            assert (tmp_path / "page.png").stat().st_size > 5000 and errors == []
        finally:
            browser.close()
