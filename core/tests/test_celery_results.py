"""The result backend that tracks no results inside `results_unwanted()`: a chord built
there (as the pipeline builds its own, in a worker) leaves no subscription and no pending
result behind, while results outside it are tracked as Celery always does."""

from __future__ import annotations

import uuid

from celery import current_app
from celery.result import AsyncResult, GroupResult

from core import celery_results


def _tracked(backend) -> set[str]:
    return {task_id for mapping in backend._pending_results for task_id in mapping}


def test_the_celery_app_uses_the_backend():
    assert isinstance(current_app.backend, celery_results.RedisBackend)
    assert celery_results.backend_url("redis://h:6379/3") == (
        "core.celery_results:RedisBackend+redis://h:6379/3"
    )
    assert celery_results.backend_url("cache+memory://") == "cache+memory://"


def test_a_group_result_built_where_results_are_unwanted_tracks_nothing():
    backend = current_app.backend
    ids = [str(uuid.uuid4()) for _ in range(3)]
    with celery_results.results_unwanted():
        results = GroupResult(str(uuid.uuid4()), [AsyncResult(i) for i in ids])
    assert not _tracked(backend) & set(ids)
    assert not backend.result_consumer.subscribed_to & {backend.get_key_for_task(i) for i in ids}
    del results


def test_elsewhere_results_are_tracked_as_celery_does():
    backend = current_app.backend
    ids = [str(uuid.uuid4()) for _ in range(2)]
    results = GroupResult(str(uuid.uuid4()), [AsyncResult(i) for i in ids])
    try:
        assert set(ids) <= _tracked(backend)
    finally:
        for result in results.results:
            backend.remove_pending_result(result)
