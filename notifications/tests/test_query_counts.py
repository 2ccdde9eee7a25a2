"""Statements per customer-message task, per webhook receiver call and per webhook
delivery: a ceiling each, so a regression shows. Counted inside the test's transaction:
a savepoint pair here is the BEGIN and COMMIT of a worker's transaction."""

from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.tests.factories import ApiClientFactory
from notifications.caching import caches_clear
from notifications.receivers import on_order_event_webhook
from notifications.services.messages import notification_send_all
from notifications.services.webhooks import webhook_order_pump
from notifications.tests.receiver import webhook_receiver
from orders.models import Order
from orders.services.transitions import order_event_record
from orders.tests.factories import ADDRESS, place_order

pytestmark = pytest.mark.django_db


def confirmed(client=None, address=ADDRESS):
    order = place_order(
        client or ApiClientFactory(), items=[("PARA-500", 2)], delivery_address=address
    )
    Order.objects.filter(pk=order.pk).update(status="confirmed")
    return order


@pytest.mark.parametrize(
    ("address", "ceiling"),
    [
        # Read the rows, the order; per channel: insert the row with its first attempt
        # (a transaction of its own), then mark it sent and record its event (one
        # transaction of two).
        (ADDRESS, 9),
        # The same for e-mail, and the order's lines for its item list.
        ({**ADDRESS, "email": "a.rao@example.com"}, 17),
    ],
)
def test_a_confirmation_message_task_costs_few_statements(
    simulator, demo_catalog, address, ceiling
):
    warm = confirmed(address=address)  # the worker has the templates already
    notification_send_all(order_id=warm.pk, event_type="order.confirmed")
    order = confirmed(address=address)

    with CaptureQueriesContext(connection) as queries:
        notification_send_all(order_id=order.pk, event_type="order.confirmed")
    assert len(queries) <= ceiling, [q["sql"] for q in queries]
    channels = ["email", "sms"] if "email" in address else ["sms"]
    sent = order.events.filter(type="notification.sent")
    assert sorted(e.data["channel"] for e in sent) == channels

    # A redelivered task: read the rows, and the order to learn there is no e-mail.
    with CaptureQueriesContext(connection) as queries:
        notification_send_all(order_id=order.pk, event_type="order.confirmed")
    assert len(queries) <= (1 if "email" in address else 2)


def test_the_webhook_receiver_costs_no_statement_per_event(demo_catalog):
    quiet = [confirmed(), confirmed()]

    def nine_events(order):
        with CaptureQueriesContext(connection) as queries:
            for event_id in range(9):
                on_order_event_webhook(
                    sender=Order,
                    order_id=order.pk,
                    event_id=event_id,
                    event_type="order.processing",
                )
        return len(queries)

    with mock.patch("notifications.receivers.webhook_pump") as pump:
        # While no client has a URL: that, read once per few seconds.
        assert [nine_events(order) for order in quiet] == [1, 0]
        hooked = ApiClientFactory(webhook_url="http://127.0.0.1:9/hooks")
        caches_clear()  # a few seconds later
        orders = [confirmed(hooked), confirmed(hooked), confirmed()]
        # Then each order's client, once.
        assert [nine_events(order) for order in orders] == [2, 1, 1]
    assert [c.args for c in pump.delay.call_args_list] == [(str(orders[0].pk),)] * 9 + [
        (str(orders[1].pk),)
    ] * 9


@pytest.mark.parametrize(("events", "ceiling"), [(1, 10), (5, 34)])
def test_the_webhook_pump_costs_six_statements_per_event(demo_catalog, events, ceiling):
    # Per event: the head (with its event), the lease, the attempt's number and row, the
    # delivery's outcome, and the look for new events.
    with webhook_receiver() as receiver:
        order = confirmed(ApiClientFactory(webhook_url=receiver.url))
        for _ in range(events - 1):
            order_event_record(order_id=order.pk, type="order.processing")
        with CaptureQueriesContext(connection) as queries:
            webhook_order_pump(order_id=order.pk)
        assert len(receiver.received) == events
    assert len(queries) <= ceiling, [q["sql"] for q in queries]
