"""``create_app``: the FastAPI application of ``podium serve`` around an exported model (``OnnxModel``, or an
``OnnxBundle`` of graphs).

Endpoints: ``GET /`` the upload page, ``POST /predict`` (multipart images in the field ``files``, or JSON
``{"images": [{"name": ..., "data": BASE64}, ...]}``), ``GET /health`` (liveness), ``GET /ready`` (200 once a warm-up
batch went through the model, 503 with the reason before), ``GET /info``, ``GET /metrics`` (Prometheus text format,
``podium.serving.metrics``).

Limits (``Limits``), each answered with its status and a one-line ``detail``, before any image is decoded:
413 for a body over ``max_bytes``, more than ``max_images`` images, or an image whose header claims more than
``max_pixels`` pixels; 415 for a body that is neither multipart nor JSON, a file that is no image, or a DICOM file
on a server without pydicom (the detail names the ``medical`` extra); 422 for an
empty body, no images, or malformed JSON. A damaged image (a truncated JPEG, a file that does not decode) gets an
``error`` in its own result while the other images of the request are answered. Inference goes through the
micro-batcher (``podium.serving.batcher``). With a ``token``, /predict and /info need ``Authorization: Bearer TOKEN``;
/health, /ready and /metrics stay open (see ``create_app``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import io
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image, UnidentifiedImageError
from starlette.exceptions import HTTPException as StarletteHTTPException

from podium.core.errors import PodiumError
from podium.data.pixels.decoders import HEAD_BYTES, UnreadableImage, decoder_for
from podium.inference.onnx import Exported
from podium.serving.batcher import MicroBatcher
from podium.serving.metrics import CONTENT_TYPE, MetricsMiddleware, Readiness, ServingMetrics
from podium.serving.page import page


@dataclass(frozen=True)
class Limits:
    """What one request may carry."""

    max_bytes: int = 20 * 1024 * 1024
    max_images: int = 16
    max_pixels: int = 40_000_000


@dataclass
class Upload:
    """One image of a request: its name and bytes."""

    name: str
    data: bytes


def _fail(status: int, detail: str) -> HTTPException:
    return HTTPException(status_code=status, detail=detail)


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


async def read_body(request: Request, limits: Limits) -> bytes:
    """The request body, refused with 413 as soon as it passes ``max_bytes`` (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_bytes:
        raise _fail(413, f"request body is {_mb(int(declared))}; the limit is {_mb(limits.max_bytes)}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_bytes:
            raise _fail(413, f"request body is over the limit of {_mb(limits.max_bytes)}")
        chunks.append(chunk)
    return b"".join(chunks)


async def uploads(request: Request, limits: Limits) -> list[Upload]:
    """The images of a request (multipart field ``files`` or any file field, or JSON), within the limits."""
    body = await read_body(request, limits)
    if not body:
        raise _fail(422, "empty request: send images as multipart/form-data field 'files' or JSON {\"images\": [...]}")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        request._body = body  # starlette parses the form from the body already read
        try:
            form = await request.form(max_files=limits.max_images + 1, max_fields=limits.max_images + 16)
        except StarletteHTTPException as e:  # starlette's own limit on parts, or a malformed body
            status = 413 if "many" in str(e.detail).lower() else 422
            raise _fail(status, f"multipart body refused: {e.detail} (at most {limits.max_images} images)") from None
        items = [Upload(v.filename or k, await v.read()) for k, v in form.multi_items() if hasattr(v, "read")]
    elif kind == "application/json":
        items = _json_uploads(body)
    else:
        raise _fail(415, f"content type {kind or 'none'} is not accepted; send multipart/form-data (field 'files') "
                         "or application/json")
    if not items:
        raise _fail(422, "no images in the request: multipart field 'files', or JSON {\"images\": [...]}")
    if len(items) > limits.max_images:
        raise _fail(413, f"{len(items)} images in one request; the limit is {limits.max_images}")
    for item in items:
        _check_header(item, limits)
    return items


def _json_uploads(body: bytes) -> list[Upload]:
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _fail(422, "the JSON body cannot be parsed") from None
    images = doc.get("images") if isinstance(doc, dict) else None
    if not isinstance(images, list):
        raise _fail(422, "JSON must be {\"images\": [{\"name\": ..., \"data\": BASE64}, ...]} (or a list of BASE64)")
    out = []
    for i, item in enumerate(images):
        name, data = (item.get("name", f"image{i}"), item.get("data")) if isinstance(item, dict) else (f"image{i}",
                                                                                                        item)
        if not isinstance(data, str):
            raise _fail(422, f"images[{i}] has no base64 'data' string")
        try:
            out.append(Upload(str(name), base64.b64decode(data.split(",")[-1], validate=True)))
        except (binascii.Error, ValueError):
            raise _fail(422, f"images[{i}] ({name}) is not valid base64") from None
    return out


def _check_header(item: Upload, limits: Limits) -> None:
    """415 for a file that is no image, 413 for one whose header claims too many pixels (read from the header
    only: nothing is decoded)."""
    try:
        with Image.open(io.BytesIO(item.data)) as im:
            w, h = im.size
    except Image.DecompressionBombError:
        raise _fail(413, f"{item.name} claims more pixels than images may have; the limit is "
                         f"{limits.max_pixels / 1e6:.0f} Mpx") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        if not item.data:
            raise _fail(422, f"{item.name} is empty (0 bytes)") from None
        w, h = _decoder_size(item)
    if w * h > limits.max_pixels:
        raise _fail(413, f"{item.name} is {w}x{h} = {w * h / 1e6:.0f} Mpx; the limit is "
                         f"{limits.max_pixels / 1e6:.0f} Mpx")


def _decoder_size(item: Upload) -> tuple[int, int]:
    """(width, height) of a file Pillow cannot read but one of training's decoders claims (DICOM), from its header;
    415 for anything else, and for a DICOM file when this server lacks pydicom (naming the extra)."""
    decoder = decoder_for(item.data[:HEAD_BYTES])
    try:
        size = decoder.dimensions(item.data) if decoder is not None else None
    except PodiumError as e:
        raise _fail(415, f"{item.name}: {e}") from None
    except UnreadableImage as e:
        raise _fail(415, f"{item.name} {e}") from None
    if size is None:
        raise _fail(415, f"{item.name} is not an image (JPEG, PNG, WebP, BMP, TIFF, GIF, DICOM)")
    return size


def prepare_upload(model: Exported, item: Upload) -> np.ndarray | str:
    """The model input of one upload, or why it cannot be used (a damaged image)."""
    from podium.data.pixels.images import truncation  # OpenCV and PIL only

    cut = truncation(item.data[:2], item.data[-1024:])
    if cut:
        return cut
    try:
        return model.prepare_bytes(item.data)
    except Exception as e:  # noqa: BLE001 - a damaged image is this image's error, never the server's
        return str(e) or type(e).__name__


def create_app(model: Exported, token: str | None = None, limits: Limits = Limits(), window_ms: float = 5.0,
               max_batch: int = 32) -> FastAPI:
    """The application serving ``model`` (see the module docstring)."""
    metrics = ServingMetrics(model, max_batch)
    readiness = Readiness(metrics)
    batcher = MicroBatcher(model.probabilities, window_ms, max_batch, on_batch=metrics.batch_size.observe)
    app = FastAPI(title="podium serve", lifespan=_lifespan(batcher, model, readiness), docs_url=None, redoc_url=None)
    authorize = _authorizer(token)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page(model.info, token is not None, asdict(limits))

    @app.get("/info")
    async def info(request: Request) -> dict[str, Any]:
        authorize(request)
        return {**model.info, "limits": asdict(limits), "ready": readiness.ready,
                "batching": {"window_ms": window_ms, "max_batch": max_batch, "batches": batcher.batches,
                             "images": batcher.images}}

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        authorize(request)
        out = await answer(model, batcher, await uploads(request, limits))
        metrics.predicted(out["results"])
        return out

    _add_probes(app, metrics, readiness)
    app.add_middleware(MetricsMiddleware, metrics=metrics, endpoints=frozenset(r.path for r in app.routes))
    return app


def _add_probes(app: FastAPI, metrics: ServingMetrics, readiness: Readiness) -> None:
    """/health, /ready and /metrics. They need no token even when /predict does: orchestrators' probes and Prometheus
    scrapers send none, and they reveal no image and no prediction (/metrics names the model file and counts
    requests, the least a monitoring system must see). A deployment that hides them does so at its proxy."""

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        if readiness.ready:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "reason": readiness.reason}, status_code=503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)


def _lifespan(batcher: MicroBatcher, model: Exported,
              readiness: Readiness) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: the micro-batcher runs while the app does; the warm-up batch runs in the background, so
    the server answers /health (live) and /ready (503, warming up) meanwhile; /predict answers too, only slower."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        warm = asyncio.create_task(readiness.warm_up(model))
        yield
        readiness.set("shutting down")
        warm.cancel()  # not awaited: a model call hung in its thread cannot be interrupted, and must not block exit
        await batcher.stop()

    return lifespan


def _authorizer(token: str | None) -> Callable[[Request], None]:
    """A check of a request's bearer token (constant-time), or one that lets every request in without a token."""

    def authorize(request: Request) -> None:
        if token is None:
            return
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.removeprefix("Bearer ").strip(), token):
            raise _fail(401, "missing or wrong API token: send 'Authorization: Bearer TOKEN'")

    return authorize


async def answer(model: Exported, batcher: MicroBatcher, items: list[Upload]) -> dict[str, Any]:
    """The /predict answer: one result per upload in order, the good ones predicted in one batcher submission and
    each damaged image an ``error`` of its own."""
    inputs = await run_in_threadpool(lambda: [prepare_upload(model, it) for it in items])
    good = [x for x in inputs if isinstance(x, np.ndarray)]
    results = iter(model.results(await batcher.submit(np.stack(good)))) if good else iter(())
    out = []
    for item, x in zip(items, inputs):
        out.append({"name": item.name, **next(results)} if isinstance(x, np.ndarray) else
                   {"name": item.name, "error": f"{item.name}: {x}"})
    return {"results": out}
