"""podium serve: the API through FastAPI's TestClient (page, predict as multipart and JSON, info, health), every bad
upload answered with its status and a one-line reason, the token rule, and a bounded load test of the real server
on 127.0.0.1 (400 requests from 8 clients: no errors, micro-batched, memory stable)."""

from __future__ import annotations

import base64
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="pip install 'podium[deploy]'")
pytest.importorskip("onnxscript", reason="pip install 'podium[deploy]'")
pytest.importorskip("fastapi", reason="pip install 'podium[deploy]'")
pytest.importorskip("prometheus_client", reason="pip install 'podium[deploy]'")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

import datagen  # noqa: E402
import podium
import servers
from podium.core.errors import PodiumError
from podium.inference.onnx import OnnxModel
from podium.serving.app import Limits, create_app
from podium.serving.server import load_model, resolve_token


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny multiclass run, exported."""
    from accelerate.state import AcceleratorState, GradientState

    tmp = tmp_path_factory.mktemp("serve")
    run = podium.train(datagen.csv_single(tmp / "data"), overrides=[*datagen.TINY, f"run.root={tmp / 'runs'}"])
    report = podium.export(run)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return Path(report["path"])


@pytest.fixture(scope="module")
def model(model_path: Path) -> OnnxModel:
    return OnnxModel(model_path)


@pytest.fixture
def client(model: OnnxModel):
    with TestClient(create_app(model, limits=Limits(max_images=4, max_pixels=1_000_000, max_bytes=2_000_000))) as c:
        yield c


def png(label: int = 0, seed: int = 0) -> bytes:
    return cv2.imencode(".png", datagen.class_image(label, np.random.default_rng(seed)))[1].tobytes()


def jpeg(label: int = 0) -> bytes:
    return cv2.imencode(".jpg", datagen.class_image(label, np.random.default_rng(0), size=64))[1].tobytes()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height and holds almost nothing (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND",
                                                                                                          b"")


def test_page_health_and_info(client: TestClient, model: OnnxModel) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "Drop images here" in page.text and 'id="files"' in page.text
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/info").json()
    assert info["classes"] == model.classes and info["task"] == "multiclass" and info["metric"] == "accuracy"
    assert info["limits"]["max_images"] == 4 and "cv_score" in info and info["model"] == "test_resnet"


def test_predict_multipart_and_json_give_the_models_answers(client: TestClient, model: OnnxModel) -> None:
    images = [png(k, seed=k) for k in range(3)]
    r = client.post("/predict", files=[("files", (f"im{k}.png", b, "image/png")) for k, b in enumerate(images)])
    assert r.status_code == 200
    results = r.json()["results"]
    probs = model.probabilities(np.stack([model.prepare_bytes(b) for b in images]))
    assert [x["name"] for x in results] == ["im0.png", "im1.png", "im2.png"]
    assert [x["label"] for x in results] == model.labels(probs)
    assert np.allclose([[x["probs"][c] for c in model.classes] for x in results], probs, atol=1e-6)
    assert len(results[0]["top"]) == 3 and results[0]["top"][0]["prob"] >= results[0]["top"][1]["prob"]
    body = {"images": [{"name": "a.png", "data": base64.b64encode(images[0]).decode()},
                       "data:image/png;base64," + base64.b64encode(images[1]).decode()]}
    j = client.post("/predict", json=body).json()["results"]
    assert [x["label"] for x in j] == [results[0]["label"], results[1]["label"]] and j[1]["name"] == "image1"


@pytest.mark.parametrize(("case", "status", "words"), [
    ("text file", 415, "not an image"),
    ("huge png header", 413, "Mpx"),
    ("big png header", 413, "2000x2000"),
    ("empty body", 422, "empty request"),
    ("too many files", 413, "limit is 4"),
    ("far too many files", 413, "at most 4"),
    ("wrong content type", 415, "not accepted"),
    ("body too large", 413, "the limit is 1.9 MB"),
    ("bad json", 422, "cannot be parsed"),
    ("bad base64", 422, "not valid base64"),
    ("empty file", 422, "is empty"),
])
def test_bad_uploads_get_their_status_and_one_line(client: TestClient, case: str, status: int, words: str) -> None:
    post = {
        "text file": lambda: client.post("/predict", files=[("files", ("notes.txt", b"hello, not an image\n",
                                                                       "text/plain"))]),
        "huge png header": lambda: client.post("/predict", files=[("files", ("bomb.png", png_header(20000, 20000),
                                                                             "image/png"))]),
        "big png header": lambda: client.post("/predict", files=[("files", ("big.png", png_header(2000, 2000),
                                                                            "image/png"))]),
        "empty body": lambda: client.post("/predict", content=b"", headers={"content-type": "application/json"}),
        "too many files": lambda: client.post("/predict", files=[("files", (f"{k}.png", png(), "image/png"))
                                                                 for k in range(5)]),
        "far too many files": lambda: client.post("/predict", files=[("files", (f"{k}.png", png(), "image/png"))
                                                                     for k in range(9)]),
        "wrong content type": lambda: client.post("/predict", content=png(), headers={"content-type": "image/png"}),
        "body too large": lambda: client.post("/predict", files=[("files", ("x.png", b"\0" * 2_100_000,
                                                                           "image/png"))]),
        "bad json": lambda: client.post("/predict", content=b"{nope", headers={"content-type": "application/json"}),
        "bad base64": lambda: client.post("/predict", json={"images": ["***"]}),
        "empty file": lambda: client.post("/predict", files=[("files", ("zero.png", b"", "image/png"))]),
    }[case]
    r = post()
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert words in detail and "\n" not in detail
    assert client.get("/health").status_code == 200  # the server goes on


def test_a_corrupt_image_errs_in_its_own_result(client: TestClient) -> None:
    data = jpeg()
    r = client.post("/predict", files=[("files", ("cut.jpg", data[: len(data) // 2], "image/jpeg")),
                                       ("files", ("good.png", png(), "image/png"))])
    assert r.status_code == 200
    cut, good = r.json()["results"]
    assert "truncated JPEG" in cut["error"] and "label" not in cut
    assert "error" not in good and good["label"]


def test_token_rule(model: OnnxModel, model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PodiumError, match="--token"):
        resolve_token("0.0.0.0", None)
    assert resolve_token("127.0.0.1", None) is None
    monkeypatch.setenv("PODIUM_TOKEN", "from-env")
    assert resolve_token("0.0.0.0", None) == "from-env"
    with TestClient(create_app(model, token="s3cret")) as c:
        assert c.get("/health").status_code == 200 and "API token" in c.get("/").text
        files = [("files", ("a.png", png(), "image/png"))]
        assert c.post("/predict", files=files).status_code == 401
        assert c.post("/predict", files=files, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.post("/predict", files=files, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/info").status_code == 401
    assert load_model(model_path.parent.parent).path == model_path  # a run folder serves its export/model.onnx


def test_serve_command_refuses_an_open_address_without_token(model_path: Path, cli, monkeypatch) -> None:
    monkeypatch.delenv("PODIUM_TOKEN", raising=False)
    code, err = cli("serve", str(model_path), "--host", "0.0.0.0")
    assert code == 2 and "--token" in err and len(err.strip().splitlines()) == 1
    code, err = cli("serve", str(model_path.parent / "nothing.onnx"))
    assert code == 2 and "neither an ONNX file nor a run" in err


def test_serving_an_onnx_file_never_imports_torch(model_path: Path) -> None:
    script = ("import sys\nimport podium.cli\nfrom fastapi.testclient import TestClient\n"
              "from podium.serving.server import load_model\nfrom podium.serving.app import create_app\n"
              f"model = load_model({str(model_path)!r})\n"
              f"files = [('files', ('a.png', {png()!r}, 'image/png'))]\n"
              "with TestClient(create_app(model)) as c:\n"
              "    assert c.post('/predict', files=files).status_code == 200\n"
              "assert 'torch' not in sys.modules, 'torch was imported'\nprint('no torch')\n")
    src = Path(__file__).resolve().parents[1] / "src"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(src)})
    assert done.returncode == 0 and "no torch" in done.stdout, done.stderr[-2000:]


def test_load_400_requests_from_8_clients(model: OnnxModel) -> None:
    import psutil

    images = [png(k % 3, seed=k) for k in range(8)]

    def client_run(k: int, n: int) -> list[tuple[int, float, bool]]:
        out = []
        with httpx.Client(base_url=url, timeout=30) as c:
            for i in range(n):
                t0 = time.perf_counter()
                r = c.post("/predict", files=[("files", ("x.png", images[(k + i) % 8], "image/png"))])
                ok = r.status_code == 200 and "error" not in r.json()["results"][0]
                out.append((r.status_code, time.perf_counter() - t0, ok))
        return out

    with servers.running(create_app(model, window_ms=5)) as url, ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: client_run(k, 10), range(8)))  # warm-up: 80 requests
        rss0 = psutil.Process().memory_info().rss
        t0 = time.perf_counter()
        rows = [r for part in pool.map(lambda k: client_run(k, 50), range(8)) for r in part]
        wall = time.perf_counter() - t0
        rss1 = psutil.Process().memory_info().rss
        info = httpx.get(f"{url}/info", timeout=30).json()
    assert len(rows) == 400 and all(status == 200 and ok for status, _, ok in rows)
    assert info["batching"]["images"] >= 480 and info["batching"]["batches"] < info["batching"]["images"]
    assert rss1 - rss0 < 64 * 1024 * 1024  # stable: no growth with the request count
    lat = sorted(t for _, t, _ in rows)
    print(f"load: 400 requests, 8 clients, {400 / wall:.0f} req/s, p50 {lat[200] * 1000:.1f} ms, "
          f"p99 {lat[395] * 1000:.1f} ms, rss +{(rss1 - rss0) / 1e6:.1f} MB, "
          f"mean batch {info['batching']['images'] / info['batching']['batches']:.2f}")


class HeldModel:
    """The model with its every model call (the warm-up batch first) held until ``gate`` opens, or failing."""

    def __init__(self, model: OnnxModel, gate: threading.Event, fail: bool = False) -> None:
        self.model, self.gate, self.fail, self.calls = model, gate, fail, 0

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.fail:
            raise RuntimeError("CUDA\nout of memory")
        assert self.gate.wait(30), "the test never opened the gate"
        return self.model.probabilities(batch)


def wait_ready(c: TestClient, seconds: float = 30) -> httpx.Response:
    deadline = time.time() + seconds
    while (r := c.get("/ready")).status_code != 200 and time.time() < deadline:
        time.sleep(0.02)
    return r


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics scrape: (name, sorted labels) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_ready_is_503_until_the_warm_up_batch_went_through(model: OnnxModel) -> None:
    gate = threading.Event()
    held = HeldModel(model, gate)
    try:
        with TestClient(create_app(held, token="s3cret")) as c:
            r = c.get("/ready")
            assert r.status_code == 503 and r.json() == {"status": "not ready",
                                                         "reason": "warming up: the model has not answered its "
                                                                   "warm-up batch yet"}
            assert c.get("/health").status_code == 200  # live all along
            assert samples(c.get("/metrics").text)[("podium_ready", ())] == 0.0
            gate.set()
            r = wait_ready(c)
            assert r.status_code == 200 and r.json() == {"status": "ready"} and held.calls == 1
            scrape = samples(c.get("/metrics").text)  # the token guards /predict and /info, not the probes
            assert scrape[("podium_ready", ())] == 1.0
            assert scrape[("podium_batch_size_count", ())] == 0.0  # the warm-up is no traffic
            assert c.get("/info", headers={"Authorization": "Bearer s3cret"}).json()["ready"] is True
    finally:
        gate.set()


def test_a_failed_warm_up_keeps_the_server_unready_with_the_reason(model: OnnxModel) -> None:
    with TestClient(create_app(HeldModel(model, threading.Event(), fail=True))) as c:
        deadline = time.time() + 30
        while "failed" not in c.get("/ready").text and time.time() < deadline:
            time.sleep(0.02)
        r = c.get("/ready")
        assert r.status_code == 503 and r.json()["reason"] == "warm-up failed: RuntimeError: CUDA out of memory"
        assert c.get("/health").status_code == 200


def test_metrics_after_a_bounded_load_match_the_requests_sent(model: OnnxModel) -> None:
    """30 requests from 6 threads (1 to 3 images each, every tenth a text file refused with 415) on a real server on
    127.0.0.1, then one scrape: requests, latencies and images counted exactly, batch sizes summing to the images."""
    sent = [(k, 1 + k % 3) for k in range(30)]

    def post(c: httpx.Client, k: int, n: int) -> int:
        files = ([("files", ("notes.txt", b"not an image", "text/plain"))] if k % 10 == 9 else
                 [("files", (f"{k}-{i}.png", png(i % 3, seed=k), "image/png")) for i in range(n)])
        return c.post("/predict", files=files).status_code

    with servers.running(create_app(model, window_ms=5)) as url, ThreadPoolExecutor(6) as pool:
        with httpx.Client(base_url=url, timeout=30) as c:
            codes = list(pool.map(lambda kn: post(c, *kn), sent))
            c.get("/nowhere")
            text = c.get("/metrics").text
    assert codes == [415 if k % 10 == 9 else 200 for k, _ in sent]
    images = sum(n for k, n in sent if k % 10 != 9)
    got = samples(text)
    assert got[("podium_requests_total", (("code", "200"), ("endpoint", "/predict")))] == 27
    assert got[("podium_requests_total", (("code", "415"), ("endpoint", "/predict")))] == 3
    assert got[("podium_requests_total", (("code", "404"), ("endpoint", "other")))] == 1
    assert got[("podium_request_duration_seconds_count", (("endpoint", "/predict"),))] == 30
    assert got[("podium_request_duration_seconds_bucket", (("endpoint", "/predict"), ("le", "+Inf")))] == 30
    assert got[("podium_images_predicted_total", ())] == images == 54
    assert got[("podium_batch_size_sum", ())] == images
    assert 1 <= got[("podium_batch_size_count", ())] <= 27
    info = {dict(k[1])["model"]: dict(k[1]) for k in got if k[0] == "podium_model_info"}
    h, w = model.hw
    assert info["test_resnet"] == {"model": "test_resnet", "file": model.path.name, "task": "multiclass",
                                   "classes": str(len(model.classes)), "input_size": f"{h}x{w}"}


def test_dicom_and_16_bit_uploads_are_decoded_as_training_decodes_them(client: TestClient, model: OnnxModel,
                                                                      tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("pydicom")
    import builtins

    from podium.data.pixels.images import read_image
    from test_medical import write_dicom

    ramp = np.linspace(0, 4095, 40 * 40).reshape(40, 40).astype(np.uint16)
    scan = write_dicom(tmp_path / "scan.dcm", ramp, "MONOCHROME1", WindowCenter=2000, WindowWidth=3000)
    deep = tmp_path / "deep.png"
    cv2.imwrite(str(deep), np.stack([ramp, ramp[::-1], ramp.T], axis=2))  # a 16-bit colour PNG
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in (scan, deep)]
    r = client.post("/predict", files=files)
    assert r.status_code == 200, r.text
    for result, path in zip(r.json()["results"], (scan, deep)):
        want = model.probabilities(model.prepare(read_image(path))[None])[0]  # training's decoder, podium's resize
        assert "error" not in result and np.allclose([result["probs"][c] for c in model.classes], want, atol=1e-6)
    big = write_dicom(tmp_path / "big.dcm", np.zeros((1100, 1000), np.uint8))
    r = client.post("/predict", files=[("files", ("big.dcm", big.read_bytes(), "application/dicom"))])
    assert r.status_code == 413 and "1100" in r.json()["detail"]  # the header's size, before any decode
    real_import = builtins.__import__

    def no_pydicom(name: str, *args: object, **kwargs: object) -> object:
        if name == "pydicom" or name.startswith("pydicom."):
            raise ImportError("No module named 'pydicom'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pydicom)
    r = client.post("/predict", files=files[:1])
    detail = r.json()["detail"]
    assert r.status_code == 415 and "pydicom" in detail and "[medical]" in detail and "\n" not in detail
