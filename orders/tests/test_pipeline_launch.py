"""`pipeline.launch` (in a worker) sends the chord without subscribing to its header's
results: nothing waits for them, and the subscriptions used to stay for good
(core/celery_results.py)."""

from __future__ import annotations

import uuid

from celery import current_app
from celery._state import _set_task_join_will_block, task_join_will_block

from orders import pipeline


def test_launch_leaves_no_result_subscription_behind(monkeypatch):
    backend = current_app.backend
    monkeypatch.setitem(current_app.conf, "task_always_eager", False)  # as in production
    sent = []
    monkeypatch.setattr(
        "celery.app.amqp.AMQP.send_task_message",
        lambda self, producer, name, message, **kw: sent.append(name),
    )
    before = task_join_will_block()
    _set_task_join_will_block(True)  # as in a worker
    try:
        pipeline.launch(uuid.uuid4())
    finally:
        _set_task_join_will_block(before)
    assert sorted(sent) == [
        "orders.payment_prepare",
        "orders.prescription_check",
        "orders.stock_reserve",
    ]
    assert not any(backend._pending_results)
    consumer = backend.result_consumer
    assert consumer is None or not consumer.subscribed_to
