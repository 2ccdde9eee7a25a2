"""Celery's Redis result backend, minus the result subscriptions nobody waits on.

Building a chord creates `GroupResult`s for its header, and each of them (through vine's
`barrier`) calls `AsyncResult.then()` on every header task, which SUBSCRIBEs the process
to that task's result channel and keeps the `AsyncResult` in the backend's pending table.
The pipeline builds its chord in a worker (the start task) and its steps store no
results (`ignore_result`): nothing ever arrives on those channels, nothing waits on them,
and since the table holds the results strongly they are never let go either. Each order
left three Redis subscriptions and three objects behind in the worker for good
(upstream: celery/celery#4824, celery/celery#3808), and the SUBSCRIBE round trips, taken
under the backend's process-wide pubsub lock, were a fair part of a launch's CPU.

So while a task runs (`celery.current_task`), this backend tracks no result: Celery's
rule is that a task never waits for another task's result (`AsyncResult.get()` in a task
raises), so whatever a task sends is sent for others to follow. Outside tasks (the API,
a shell, tests) results are tracked as Celery always does, and everything else
(`AsyncResult.get()`, chords' counters, stored results) is Celery's own code, unchanged.
A task that opts out of Celery's rule (`disable_sync_subtasks=False`) would wait in vain
here: nothing in this project does.

Selected in cot_project/celery.py with Celery's `module:Class+redis://…` form of
`result_backend`; the URL is unchanged. No Django here either (see kombu_redis).
"""

from __future__ import annotations

from typing import Any

from celery import current_task
from celery.backends.redis import RedisBackend as CeleryRedisBackend


class RedisBackend(CeleryRedisBackend):
    def add_pending_result(
        self, result: Any, weak: bool = False, start_drainer: bool = True
    ) -> Any:
        if current_task:
            return result
        return super().add_pending_result(result, weak=weak, start_drainer=start_drainer)

    def on_task_call(self, producer: Any, task_id: str) -> None:
        if not current_task:
            super().on_task_call(producer, task_id)


def backend_url(url: str) -> str:
    """`url` with this backend selected, if it is a Redis URL; anything else as it is."""
    if url.startswith(("redis://", "rediss://")):
        return f"{__name__}:RedisBackend+{url}"
    return url
