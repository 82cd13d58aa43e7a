"""What ``podium serve`` tells Prometheus (``GET /metrics``) and load balancers (``GET /ready``).

``ServingMetrics`` holds its own ``CollectorRegistry`` per app: the default global registry would refuse a second
app's metrics of the same names (tests and notebooks create several apps in one process) and mix their counts.
``Readiness`` is the model's warm-up state: a server is live (``/health``) from its first second, but ready only once
a warm-up batch has gone through the model, so a load balancer sends no traffic to a replica still paying
onnxruntime's first-call cost (memory planning, kernel selection).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from podium.inference.onnx import Exported

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

CONTENT_TYPE = CONTENT_TYPE_LATEST
WARMING = "warming up: the model has not answered its warm-up batch yet"


def batch_buckets(max_batch: int) -> list[float]:
    """Powers of two up to twice ``max_batch`` (one request's images may carry a batch past ``max_batch``)."""
    out, b = [], 1
    while b <= 2 * max_batch:
        out.append(float(b))
        b *= 2
    return out


class ServingMetrics:
    """One app's Prometheus instruments: requests by endpoint and status code, request latency, micro-batch sizes,
    images predicted, readiness and what the model is."""

    def __init__(self, model: Exported, max_batch: int) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter("podium_requests", "HTTP requests by endpoint and status code", ["endpoint", "code"],
                                registry=reg)
        self.latency = Histogram("podium_request_duration_seconds", "Time from a request's arrival to its response",
                                 ["endpoint"], registry=reg)
        self.batch_size = Histogram("podium_batch_size", "Images per micro-batch run through the model",
                                    buckets=batch_buckets(max_batch), registry=reg)
        self.images = Counter("podium_images_predicted", "Images answered with a prediction (not damaged uploads)",
                              registry=reg)
        self.ready = Gauge("podium_ready", "1 once the model has answered its warm-up batch", registry=reg)
        # the file's name, not its path: /metrics is open (see create_app) and the server's folders are nobody's
        # business; /info behind the token says the same
        Info("podium_model", "The served model", registry=reg).info({
            "model": str(model.info.get("model") or ""), "file": model.path.name, "task": model.task.name,
            "classes": str(len(model.classes)), "input_size": model.input_size})

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)

    def predicted(self, results: list[dict[str, Any]]) -> None:
        """Count a /predict answer's predicted images (a damaged image's ``error`` is no prediction)."""
        self.images.inc(sum("error" not in r for r in results))


class Readiness:
    """Whether the app is ready for traffic, and why not (``reason``)."""

    def __init__(self, metrics: ServingMetrics) -> None:
        self.metrics = metrics
        self.reason: str | None = WARMING

    @property
    def ready(self) -> bool:
        """True once the warm-up batch went through and until shutdown."""
        return self.reason is None

    def set(self, reason: str | None) -> None:
        """Ready (``None``) or not ready for ``reason`` (one line)."""
        self.reason = reason
        self.metrics.ready.set(1 if reason is None else 0)

    async def warm_up(self, model: Exported) -> None:
        """Run one batch of a black image through the model (in a worker thread), then mark the app ready; a model
        that fails it keeps the app unready with the failure as the reason."""
        try:
            await run_in_threadpool(lambda: model.probabilities(model.blank_batch()))
        except Exception as e:  # noqa: BLE001 - the failure is /ready's answer, /health stays live
            self.set(f"warm-up failed: {type(e).__name__}: {' '.join(str(e).split())}"[:300])
            return
        self.set(None)


class MetricsMiddleware:
    """ASGI middleware counting every HTTP request by endpoint and status code, with its latency. Paths that are no
    route count as ``other``, so scanners probing random URLs cannot grow the label set."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics, endpoints: frozenset[str]) -> None:
        self.app, self.metrics, self.endpoints = app, metrics, endpoints

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        """Pass the request on, recording its endpoint, status code and latency when its response ends."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status, recorded = time.perf_counter(), [500], [False]
        endpoint = scope["path"] if scope["path"] in self.endpoints else "other"

        def record() -> None:
            recorded[0] = True
            self.metrics.requests.labels(endpoint, str(status[0])).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)

        async def counted_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body") and not recorded[0]:
                record()  # before the last byte leaves: a client that got its answer finds it counted
            await send(message)

        try:
            await self.app(scope, receive, counted_send)
        finally:
            if not recorded[0]:  # an exception before any response: the server answers 500
                record()
