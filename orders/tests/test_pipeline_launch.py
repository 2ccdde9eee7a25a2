"""`pipeline.launch`, run by the pipeline's start task in a worker, sends the chord
without subscribing to its header's results or keeping them: nothing waits for them, and
Celery's Redis backend would hold both for good (cot_project/celery_results.py)."""

from __future__ import annotations

import gc
import uuid

from celery import current_app
from celery.result import AsyncResult

from orders import pipeline, tasks


def test_launch_in_a_task_leaves_no_result_subscription_or_result_behind(monkeypatch):
    backend = current_app.backend
    monkeypatch.setitem(current_app.conf, "task_always_eager", False)  # as in production
    sent: dict[str, str] = {}
    monkeypatch.setattr(
        "celery.app.amqp.AMQP.send_task_message",
        lambda self, producer, name, message, **kw: sent.update({message.headers["id"]: name}),
    )
    order_id = uuid.uuid4()
    tasks.start_pipeline.apply(args=[str(order_id)])  # in this process, as a worker runs it
    header = pipeline.canvas(order_id).tasks
    assert sorted(sent.values()) == sorted(signature.task for signature in header)
    consumer = backend.result_consumer
    assert consumer is None or not {backend.get_key_for_task(i) for i in sent} & set(
        consumer.subscribed_to
    )
    gc.collect()
    assert not _results_alive(set(sent))


def _results_alive(ids: set[str]) -> list[AsyncResult]:
    alive = []
    for obj in gc.get_objects():
        try:
            if isinstance(obj, AsyncResult) and obj.id in ids:
                alive.append(obj)
        except ReferenceError:
            continue  # a weak proxy whose object is gone (left by another test)
    return alive
