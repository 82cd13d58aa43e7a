"""Micro-batching: concurrent requests wait a few milliseconds for each other and go through the model as one batch.

A single model call on a batch of 8 costs far less than 8 calls on one image each (the weights are read once, the
kernels run wider), so under load the server answers more requests per second at the price of ``window_ms`` of
latency at most. The model runs in a worker thread (onnxruntime releases the GIL), so the event loop keeps accepting
and decoding requests meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np


class MicroBatcher:
    """Collects ``submit``ted inputs for up to ``window_ms`` (or ``max_batch`` images) and runs ``fn`` on them at
    once; ``batches`` and ``images`` count what it ran (``/info`` shows them), ``on_batch`` hears each batch's size
    (the batch-size histogram of ``/metrics``)."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], window_ms: float = 5.0, max_batch: int = 32,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.fn, self.window, self.max_batch, self.on_batch = fn, window_ms / 1000.0, max_batch, on_batch
        self.batches = self.images = 0
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Start the collecting task on the running loop."""
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop collecting (pending requests get an error)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._task = None

    async def submit(self, x: np.ndarray) -> np.ndarray:
        """The model's output for the inputs ``x`` (N, ...), computed together with other waiting requests."""
        if self._queue is None:
            raise RuntimeError("the batcher is not started")
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put((x, fut))
        return await fut

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._queue is not None
        while True:
            items = [await self._queue.get()]
            n = len(items[0][0])
            deadline = loop.time() + self.window
            while n < self.max_batch:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), left)
                except asyncio.TimeoutError:
                    break
                items.append(item)
                n += len(item[0])
            batch = np.concatenate([x for x, _ in items])
            try:
                out = await loop.run_in_executor(None, self.fn, batch)
            except Exception as e:  # noqa: BLE001 - every waiting request gets the failure, the loop goes on
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            self.batches, self.images = self.batches + 1, self.images + len(batch)
            if self.on_batch is not None:
                self.on_batch(len(batch))
            start = 0
            for x, fut in items:
                if not fut.done():
                    fut.set_result(out[start:start + len(x)])
                start += len(x)
