"""Customer messages and outbound webhooks end to end: the live worker sends SMS and
e-mail through the simulator and POSTs every event of a webhook client's orders to a real
HTTP endpoint started here."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from celery import Celery
from celery.result import allow_join_result
from django.utils import timezone

from notifications.tests.receiver import WebhookReceiver, webhook_receiver
from orders.tests.factories import ADDRESS
from tests.brokers import celery_client
from tests.e2e.conftest import Stack
from tests.e2e.test_order_flow import body

pytestmark = pytest.mark.e2e
EMAIL = "patient@example.com"


def wait_until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def hooked(live_stack: Stack, receiver: WebhookReceiver, django_db_blocker) -> dict[str, str]:
    """A client created with a webhook URL, as `create_api_client --webhook-url` makes it."""
    from core.tests.factories import ApiClientFactory, api_key_for
    from notifications.receivers import WEBHOOK_CLIENTS_SECONDS

    with django_db_blocker.unblock():
        client = ApiClientFactory(
            name=f"e2e-hooked-{uuid.uuid4().hex[:8]}", webhook_url=receiver.url
        )
        key = api_key_for(client)
    # The live processes learn of a new URL within this time; an event before that waits
    # for beat's sweep, which this stack does not run.
    time.sleep(WEBHOOK_CLIENTS_SECONDS)
    return {"key": key, "secret": client.webhook_secret}


@pytest.fixture(scope="module")
def broker(live_stack: Stack) -> Iterator[Celery]:
    """The live stack's broker and result backend (its key prefix), to hand tasks to the
    live worker as beat or a redelivery would."""
    app = celery_client(live_stack.env)
    yield app
    app.close()


def place_and_confirm(stack: Stack, key: str, **address) -> dict:
    with stack.client(None, headers={"Authorization": f"Api-Key {key}"}) as client:
        data = body(delivery_address={**ADDRESS, **address})
        response = client.post("/api/v1/orders/", json=data)
        assert response.status_code == 202, response.text
        order = stack.wait_for(client, response.json()["id"])
        assert order["status"] == "confirmed", order
        # Then the messages: notification.sent lands on the timeline after confirmation.
        return stack.wait_for(
            client,
            order["id"],
            until=lambda o: (
                sum(e["type"] == "notification.sent" for e in o["events"])
                == (2 if address.get("email") else 1)
            ),
        )


def messages(stack: Stack, order_id: str, event: str) -> list[dict]:
    key = f"order:{order_id}:notify:{event}:"
    return [m for m in stack.simulator.ledger()["messages"] if m["idempotency_key"].startswith(key)]


def test_customer_is_told_once_per_channel_even_when_the_task_is_redelivered(stack, hooked, broker):
    order = place_and_confirm(stack, hooked["key"], email=EMAIL)

    # Two more deliveries of the same message task, run by the live worker's children. The
    # task stores no result; these two ask for one, so the test can wait for them.
    results = [
        broker.send_task(
            "notifications.notify_customer",
            args=(order["id"], "order.confirmed"),
            queue="notifications",
            ignore_result=False,
        )
        for _ in range(2)
    ]
    # Eager tasks run concurrently by threads of earlier tests can leave Celery's
    # process-wide "inside a task" flag set (it is saved and restored per call, not per
    # thread); this process is no worker, so waiting here cannot deadlock one.
    with allow_join_result():
        for result in results:
            result.get(timeout=20)

    sent = messages(stack, order["id"], "order.confirmed")
    assert sorted((m["channel"], m["to"]) for m in sent) == [
        ("email", EMAIL),
        ("sms", ADDRESS["phone"]),
    ]
    assert all(order["number"] in m["text"] for m in sent)
    assert sum(e["type"] == "notification.sent" for e in order["events"]) == 2


def test_every_event_reaches_the_client_signed_in_order_after_a_500(
    stack, hooked, receiver, broker, django_db_blocker
):
    receiver.script = [500]  # the first POST of this test fails, then the endpoint recovers
    order = place_and_confirm(stack, hooked["key"])
    timeline = [e["type"] for e in order["events"]]

    def delivered() -> list[dict]:
        seen, ordered = set(), []
        for event in receiver.events(order["id"]):
            if event["id"] not in seen:
                seen.add(event["id"])
                ordered.append(event)
        return ordered

    wait_until(lambda: len(delivered()) == len(timeline))
    posts = receiver.events(order["id"])
    assert posts[0]["id"] == posts[1]["id"], "the event answered with 500 was sent again"
    ids = [e["id"] for e in delivered()]
    assert ids == sorted(ids)
    assert [e["type"] for e in delivered()] == timeline
    assert receiver.all_signed_by(hooked["secret"])


def crashed_order(client_filter: dict, event_type: str, *, age: timedelta = timedelta()):
    """A crash between commit and enqueue: an ended order and one event, committed, and
    nothing enqueued for them. Ended, so it is not in flight for the other tests' metrics;
    the event `age` old (older than a sweep's grace, say)."""
    from core.models import ApiClient
    from orders.models import Order, OrderEvent

    client = ApiClient.objects.filter(**client_filter).first()
    order = Order.objects.create(
        number=f"E2E-{uuid.uuid4().hex[:10]}",
        client=client,
        channel=client.channel,
        customer_id="C-crash",
        delivery_address=ADDRESS,
        payment_method="cod",
        total_amount=Decimal("30.00"),
        status="cancelled",
        failure_reason="cancelled_by_ops",
    )
    event = OrderEvent.objects.create(order=order, type=event_type, data={})
    OrderEvent.objects.filter(pk=event.pk).update(at=timezone.now() - age)
    return order, event


def test_an_event_no_pump_was_enqueued_for_is_found_by_the_sweep(
    stack, hooked, receiver, broker, django_db_blocker
):
    # Beat's sweep (handed to the live worker here) finds the event on the timeline.
    with django_db_blocker.unblock():
        order, event = crashed_order({"webhook_url": receiver.url}, "order.received")

    with allow_join_result():  # see above
        assert broker.send_task("notifications.webhook_sweep", queue="maintenance").get(timeout=20)
    wait_until(lambda: receiver.events(str(order.pk)))
    [posted] = receiver.events(str(order.pk))
    assert (posted["id"], posted["type"]) == (event.pk, "order.received")
    assert receiver.all_signed_by(hooked["secret"])


def test_a_customer_message_whose_task_was_lost_is_sent_by_the_sweep(
    stack, broker, django_db_blocker
):
    # No message task ever reached the broker. Beat's sweep (handed to the live worker
    # here) finds the event without a message, older than its grace, and the worker
    # sends it.
    with django_db_blocker.unblock():
        order, _ = crashed_order({"webhook_url": ""}, "order.cancelled", age=timedelta(minutes=2))

    broker.send_task("notifications.notification_sweep", queue="maintenance")
    wait_until(lambda: messages(stack, str(order.pk), "order.cancelled"))
    [sms] = messages(stack, str(order.pk), "order.cancelled")
    assert (sms["channel"], sms["to"]) == ("sms", ADDRESS["phone"])
