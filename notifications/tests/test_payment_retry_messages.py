"""The customer hears of each decline that leaves time to pay another way, with the
window's end, and of the failed payment when the window passes unpaid. Inline pipeline,
real database; the messages are read from the simulator's ledger."""

import pytest

from core.tests.factories import ApiClientFactory
from notifications.messages import DEFAULTS
from notifications.models import NotificationTemplate
from notifications.tests.test_hold_messages import messages
from orders.pipeline import resume
from orders.services.payment_retry import order_expire_payment_retries, order_payment_retry
from orders.tests.factories import ADDRESS, place_order

pytestmark = pytest.mark.django_db
EMAIL = "a.rao@example.com"


@pytest.fixture
def order(demo_catalog, simulator, settings, django_capture_on_commit_callbacks):
    settings.COT_PIPELINE_MODE = "inline"
    client = ApiClientFactory(payment_retry_seconds=600)
    with django_capture_on_commit_callbacks(execute=True):
        placed = place_order(
            client,
            items=[("PARA-500", 1)],
            payment_token="tok_decline",
            delivery_address={**ADDRESS, "email": EMAIL},
        )
    placed.refresh_from_db()
    return placed


def test_each_decline_in_the_window_is_told_with_its_end(
    order, simulator, django_capture_on_commit_callbacks
):
    until = order.payment_retry_until.strftime("%d %b %Y, %H:%M UTC")
    told = messages(simulator, order, "payment.retry_requested")
    assert told["sms"]["text"] == (
        f"Payment for your order {order.number} did not go through. Your items are set "
        f"aside: please pay another way in your app by {until}."
    )
    assert told["email"]["subject"] == f"Payment for your order {order.number} did not go through"
    assert f"set aside for you until {until}" in told["email"]["text"]

    # Declined again: told again (one message per decline), the same end.
    with django_capture_on_commit_callbacks(execute=True):
        order_payment_retry(order=order, payment_method="upi", payment_token="tok_decline")
    with django_capture_on_commit_callbacks(execute=True):
        resume(order.pk)
    sent = [
        m
        for m in simulator.ledger()["messages"]
        if ":notify:payment.retry_requested:" in m["idempotency_key"]
        and str(order.pk) in m["idempotency_key"]
        and m["channel"] == "sms"
    ]
    assert len(sent) == 2 and {m["text"] for m in sent} == {told["sms"]["text"]}

    with django_capture_on_commit_callbacks(execute=True):
        assert order_expire_payment_retries(now=order.payment_retry_until) == 1
    failed = messages(simulator, order, "payment.failed")
    assert failed["sms"]["text"] == (
        f"Payment for your order {order.number} did not go through (payment declined)."
    )


def test_the_payment_retry_messages_are_seeded_as_editable_templates():
    for channel in ("sms", "email"):
        template = NotificationTemplate.objects.get(
            event_type="payment.retry_requested", channel=channel
        )
        assert (template.subject, template.body) == (
            DEFAULTS[("payment.retry_requested", channel)].subject,
            DEFAULTS[("payment.retry_requested", channel)].body,
        )
