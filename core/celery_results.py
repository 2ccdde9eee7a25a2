"""Celery's Redis result backend, minus the result subscriptions nobody waits on.

Building a chord creates `GroupResult`s for its header, and each of them (through vine's
`barrier`) calls `AsyncResult.then()` on every header task, which SUBSCRIBEs the process
to that task's result channel and keeps the `AsyncResult` in the backend's pending table.
The pipeline builds its chord in a worker (`orders.pipeline.launch`) and its steps store
no results (`ignore_result`): nothing ever arrives on those channels, nothing waits on
them, and since the table holds the results strongly they are never let go either. Each
order left three Redis subscriptions and three objects behind in the worker for good
(upstream: celery/celery#4824, #3808), and the SUBSCRIBE round trips, taken under the
backend's process-wide pubsub lock, were a fair part of a launch's CPU.

`results_unwanted()` marks a block whose results nobody will ask for; inside it the
backend tracks nothing. Everything else (`AsyncResult.get()`, chords' counters, stored
results) is Celery's own code, unchanged. Selected in cot_project/celery.py with
Celery's `module:Class+redis://…` form of `result_backend`; the URL is unchanged.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery.backends.redis import RedisBackend as CeleryRedisBackend

_unwanted: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "cot_results_unwanted", default=False
)


@contextmanager
def results_unwanted() -> Iterator[None]:
    """Send tasks/canvases whose results no one in this process will wait for."""
    token = _unwanted.set(True)
    try:
        yield
    finally:
        _unwanted.reset(token)


class RedisBackend(CeleryRedisBackend):
    def add_pending_result(
        self, result: Any, weak: bool = False, start_drainer: bool = True
    ) -> Any:
        if _unwanted.get():
            return result
        return super().add_pending_result(result, weak=weak, start_drainer=start_drainer)

    def on_task_call(self, producer: Any, task_id: str) -> None:
        if not _unwanted.get():
            super().on_task_call(producer, task_id)


def backend_url(url: str) -> str:
    """`url` with this backend selected, if it is a Redis URL; anything else as it is."""
    if url.startswith(("redis://", "rediss://")):
        return f"{__name__}:RedisBackend+{url}"
    return url
