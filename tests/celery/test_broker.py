"""The broker choice (cot_project/broker.py): the queues each broker gets, delays in whole
seconds for RabbitMQ's native delayed delivery, and what a dead letter becomes (the
order flagged for ops). Against the real database; the broker itself is exercised end to
end in tests/e2e/test_broker_rabbitmq.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from kombu.transport.native_delayed_delivery import calculate_routing_key

from cot_project import broker
from cot_project.tasks import dead_letter_record

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_redis_keeps_plain_queues_and_its_transport_options():
    [queue] = broker.task_queues(("pipeline",), amqp=False, delivery_limit=10)
    assert (queue.name, queue.queue_arguments) == ("pipeline", None)
    options = broker.transport_options(amqp=False, visibility_timeout=3600, key_prefix="p:")
    assert options == {"visibility_timeout": 3600, "max_connections": 200, "global_keyprefix": "p:"}


def test_rabbitmq_gets_quorum_queues_on_topic_exchanges_with_a_delivery_limit():
    queues = broker.task_queues(("pipeline", "payments"), amqp=True, delivery_limit=7)
    for queue in queues:
        # Native delayed delivery forwards only to topic (or fanout) exchanges.
        assert (queue.exchange.name, queue.exchange.type) == (queue.name, "topic")
        assert queue.queue_arguments["x-queue-type"] == "quorum"
        assert queue.queue_arguments["x-delivery-limit"] == 7
        assert queue.queue_arguments["x-dead-letter-exchange"] == broker.DEAD_LETTER_EXCHANGE
    assert broker.transport_options(amqp=True, visibility_timeout=1, key_prefix="") == {
        "confirm_publish": True
    }
    assert broker.is_amqp("amqp://guest:guest@127.0.0.1:5672/v")
    assert not broker.is_amqp("redis://127.0.0.1:6379/0")


def test_sub_second_delays_are_rounded_up_to_whole_seconds():
    # What Celery does with a countdown on quorum queues: a sub-second one fails to publish.
    with pytest.raises(ValueError):
        calculate_routing_key(int(0.7), "pipeline")
    assert broker.whole_seconds_countdown(0.7, None, NOW) == (1.0, None)
    assert broker.whole_seconds_countdown(3.2, None, NOW) == (4.0, None)
    assert broker.whole_seconds_countdown(None, None, NOW) == (None, None)
    soon = NOW + timedelta(milliseconds=400)
    assert broker.whole_seconds_countdown(None, soon, NOW) == (1.0, None)
    past = NOW - timedelta(seconds=5)
    assert broker.whole_seconds_countdown(None, past, NOW) == (None, past)


def test_a_dead_letter_is_read_from_what_rabbitmq_adds():
    headers = {
        "task": "orders.book_shipment",
        "id": "t-1",
        "x-delivery-count": 0,
        "x-death": [{"count": 1, "reason": "delivery_limit", "queue": "logistics"}],
    }
    letter = broker.dead_letter_read(headers, [["o-1"], {}, {}], delivery_limit=4)
    assert letter == broker.DeadLetter(
        task="orders.book_shipment",
        task_id="t-1",
        args=["o-1"],
        queue="logistics",
        reason="delivery_limit",
        deliveries=5,
    )


@pytest.mark.django_db
def test_an_orders_dead_letter_flags_the_order_once(demo_catalog, simulator, settings):
    from core.tests.factories import ApiClientFactory
    from orders.tests.factories import place_order

    settings.COT_PIPELINE_MODE = "inline"
    order = place_order(ApiClientFactory(), items=[("PARA-500", 1)])
    letter = broker.DeadLetter(
        task="orders.book_shipment",
        task_id="t-1",
        args=[str(order.pk)],
        queue="logistics",
        reason="delivery_limit",
        deliveries=11,
    )
    dead_letter_record(letter)
    dead_letter_record(letter)  # drained twice (a redelivered dead letter): one flag

    order.refresh_from_db()
    assert order.needs_attention
    assert list(
        order.events.filter(type="order.needs_attention").values_list("data", flat=True)
    ) == [
        {"step": "shipment", "attempts": 11, "task": "orders.book_shipment", "dead_lettered": True}
    ]


@pytest.mark.django_db
def test_other_dead_letters_flag_nothing():
    from orders.models import Order

    for task, args in (
        ("notifications.notify_customer", ["n-1"]),
        ("orders.book_shipment", [str(uuid.uuid4())]),  # no such order
        ("orders.sweep_stuck_orders", []),
    ):
        dead_letter_record(
            broker.DeadLetter(task, "t", args, "pipeline", "delivery_limit", deliveries=11)
        )
    assert not Order.objects.filter(needs_attention=True).exists()


def test_the_cot_app_is_celerys_default_in_every_thread():
    """Tasks sent from other threads (the API's, a test's race) go through our app: an
    import that touched a shared task before it existed would leave Celery's fallback app
    (no broker, not eager) as the default."""
    import threading

    from celery import current_app

    seen: list[str] = []
    thread = threading.Thread(target=lambda: seen.append(current_app.main))
    thread.start()
    thread.join()
    assert seen == ["cot"]
