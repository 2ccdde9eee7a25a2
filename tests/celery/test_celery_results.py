"""The result backend that tracks no results while a task runs: a chord built in a task
(as the pipeline builds its own, in a worker) leaves no subscription and no pending result
behind, while results outside tasks are tracked as Celery always does."""

from __future__ import annotations

import gc
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from celery import current_app
from celery.app import pop_current_task, push_current_task
from celery.result import AsyncResult, GroupResult

from cot_project import celery_results


@contextmanager
def in_a_task() -> Iterator[None]:
    """As in a worker running a task (`celery.current_task` is set)."""
    push_current_task(current_app.tasks["celery.backend_cleanup"])
    try:
        yield
    finally:
        pop_current_task()


def keys(backend, ids: list[str]) -> set[bytes]:
    return {backend.get_key_for_task(i) for i in ids}


def subscribed(backend, ids: list[str]) -> set[bytes]:
    """Which of these tasks' result channels the process is subscribed to."""
    consumer = backend.result_consumer
    return set() if consumer is None else keys(backend, ids) & set(consumer.subscribed_to)


def test_the_celery_app_uses_the_backend():
    assert isinstance(current_app.backend, celery_results.RedisBackend)
    assert celery_results.backend_url("redis://h:6379/3") == (
        "cot_project.celery_results:RedisBackend+redis://h:6379/3"
    )
    assert celery_results.backend_url("cache+memory://") == "cache+memory://"


def test_a_group_result_built_in_a_task_is_neither_subscribed_to_nor_kept():
    backend = current_app.backend
    ids = [str(uuid.uuid4()) for _ in range(3)]
    with in_a_task():
        results = GroupResult(str(uuid.uuid4()), [AsyncResult(i) for i in ids])
    assert not subscribed(backend, ids)
    left = [weakref.ref(result) for result in results.results]
    del results
    gc.collect()
    assert not [ref for ref in left if ref() is not None]


def test_outside_tasks_results_are_tracked_as_celery_does():
    backend = current_app.backend
    ids = [str(uuid.uuid4()) for _ in range(2)]
    results = GroupResult(str(uuid.uuid4()), [AsyncResult(i) for i in ids])
    left = [weakref.ref(result) for result in results.results]
    del results
    gc.collect()
    try:
        assert subscribed(backend, ids) == keys(backend, ids)
        assert all(ref() is not None for ref in left)  # kept until their results arrive
    finally:
        for ref in left:
            if (result := ref()) is not None:
                backend.remove_pending_result(result)
