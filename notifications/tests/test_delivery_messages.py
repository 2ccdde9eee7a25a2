"""Customer messages for a parcel's way to the customer: rendered with the event's own
data (its parcel, its attempt), one message per event."""

from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.utils import timezone

from core.tests.factories import ApiClientFactory
from logistics.models import Shipment
from notifications.models import Notification
from notifications.services.webhooks import webhook_order_pump
from notifications.tasks import notification_sweep, notify_customer
from notifications.tests.receiver import webhook_receiver
from orders.models import OrderEvent
from orders.services.transitions import order_event_record
from orders.tests.factories import ADDRESS, place_order

pytestmark = pytest.mark.django_db

EMAIL = "a.rao@example.com"


@pytest.fixture
def order(demo_catalog):
    order = place_order(
        ApiClientFactory(), items=[("PARA-500", 2)], delivery_address={**ADDRESS, "email": EMAIL}
    )
    for center, partner, awb in (("BLR-1", "bluedart", "AWB-1"), ("DEL-1", "delhivery", "AWB-2")):
        Shipment.objects.create(
            order_id=order.pk,
            center=center,
            partner=partner,
            awb=awb,
            idempotency_key=f"order:{order.pk}:ship:{center}",
        )
    return order


def tell(order, event_type, **data):
    """The event recorded as the tracking webhook records it, and its message task run."""
    event = order_event_record(order_id=order.pk, type=event_type, data=data)
    notify_customer.apply(args=(str(order.pk), event_type, event.pk))
    return event


def sent(simulator, order, event_type, channel="sms"):
    key = f"order:{order.pk}:notify:{event_type}:{channel}"
    return [m for m in simulator.ledger()["messages"] if m["idempotency_key"].startswith(key)]


def test_picked_up_carries_the_tracking_link_of_the_parcel_s_partner(simulator, order):
    # The event names only the AWB: the partner comes from the shipment.
    tell(order, "shipment.picked_up", awb="AWB-2")

    link = f"{settings.SIMULATOR_URL}/logistics/delhivery/track/AWB-2"
    [sms] = sent(simulator, order, "shipment.picked_up")
    assert sms["text"] == f"Your order {order.number} is on its way. Track it: {link}"
    [email] = sent(simulator, order, "shipment.picked_up", "email")
    assert email["subject"] == f"Your order {order.number} is on its way"
    assert link in email["text"] and "AWB-2" in email["text"] and "Paracetamol" in email["text"]


def test_each_parcel_and_each_failed_attempt_gets_its_own_message(simulator, order):
    tell(order, "shipment.picked_up", awb="AWB-1")
    tell(order, "shipment.picked_up", awb="AWB-2")
    tell(order, "shipment.delivery_failed", awb="AWB-1", attempt=1, reason="customer_unavailable")
    tell(order, "shipment.delivery_failed", awb="AWB-1", attempt=2, reason="address_not_found")

    assert sorted(m["text"][-5:] for m in sent(simulator, order, "shipment.picked_up")) == [
        "AWB-1",
        "AWB-2",
    ]
    first, second = sent(simulator, order, "shipment.delivery_failed")
    assert first["text"] == (
        f"We could not deliver your order {order.number}: nobody was available to receive "
        "it. The courier will try again."
    )
    assert "the courier could not find the address" in second["text"]
    assert "try again" in second["text"]
    rows = Notification.objects.filter(order_id=order.pk, status="sent")
    assert rows.count() == 8  # four events, SMS and e-mail each
    told = order.events.filter(type="notification.sent", data__event="shipment.delivery_failed")
    assert told.count() == 4 and all(e.data["event_id"] for e in told)


def test_the_last_failed_attempt_says_the_parcel_comes_back(simulator, order):
    last = settings.COT_DELIVERY_ATTEMPTS
    tell(order, "shipment.delivery_failed", awb="AWB-1", attempt=last, reason="door_locked")

    [sms] = sent(simulator, order, "shipment.delivery_failed")
    assert sms["text"] == (
        f"We could not deliver your order {order.number}: door locked. It is coming back to "
        "us; we will be in touch."
    )


@pytest.mark.parametrize(
    ("event_type", "sms_text", "subject"),
    [
        (
            "shipment.out_for_delivery",
            "Your order {} is out for delivery and will reach you today.",
            "Your order {} is out for delivery",
        ),
        (
            "shipment.delivered",
            "Your order {} was delivered. Get well soon!",
            "Your order {} was delivered",
        ),
        (
            "shipment.returned",
            "Your order {} could not be delivered and has come back to us. We will tell you "
            "about your refund shortly.",
            "Your order {} has come back to us",
        ),
    ],
)
def test_the_other_delivery_messages_render_with_real_event_data(
    simulator, order, event_type, sms_text, subject
):
    tell(order, event_type, awb="AWB-1")

    [sms] = sent(simulator, order, event_type)
    assert sms["text"] == sms_text.format(order.number)
    [email] = sent(simulator, order, event_type, "email")
    assert email["subject"] == subject.format(order.number)
    assert "{" not in email["text"] and "Paracetamol" in email["text"]


def test_a_redelivered_task_sends_once_and_a_task_without_its_event_sends_nothing(simulator, order):
    event = tell(order, "shipment.out_for_delivery", awb="AWB-1")
    notify_customer.apply(args=(str(order.pk), "shipment.out_for_delivery", event.pk))
    # Which parcel is not known: no message rather than a wrong one.
    notify_customer.apply(args=(str(order.pk), "shipment.delivered"))

    assert len(sent(simulator, order, "shipment.out_for_delivery")) == 1
    assert sent(simulator, order, "shipment.delivered") == []


def test_the_receiver_enqueues_the_event_s_message_and_skips_the_untold_stages(
    order, django_capture_on_commit_callbacks
):
    with (
        mock.patch("notifications.receivers.notify_customer") as notify,
        django_capture_on_commit_callbacks(execute=True),
    ):
        events = [
            order_event_record(order_id=order.pk, type=event_type, data={"awb": "AWB-1"})
            for event_type in ("shipment.in_transit", "shipment.returning", "shipment.delivered")
        ]

    assert [c.args for c in notify.delay.call_args_list] == [
        (str(order.pk), "shipment.delivered", events[-1].pk)
    ]


def test_the_sweeper_sends_each_lost_delivery_message(simulator, order):
    old = timezone.now() - timedelta(minutes=2)
    for attempt in (1, 2):
        event = order_event_record(
            order_id=order.pk,
            type="shipment.delivery_failed",
            data={"awb": "AWB-1", "attempt": attempt, "reason": "refused"},
        )
        OrderEvent.objects.filter(pk=event.pk).update(at=old)

    assert notification_sweep.apply().get() == 2  # eager: the message tasks ran
    texts = [m["text"] for m in sent(simulator, order, "shipment.delivery_failed")]
    assert len(texts) == 2 and all("the parcel was refused" in t for t in texts)
    assert notification_sweep.apply().get() == 0


def test_delivery_events_reach_the_client_s_webhook(demo_catalog):
    with webhook_receiver() as receiver:
        order = place_order(ApiClientFactory(webhook_url=receiver.url), items=[("PARA-500", 1)])
        stages = ["shipment.picked_up", "shipment.in_transit", "shipment.delivery_failed"]
        for stage in stages:
            order_event_record(order_id=order.pk, type=stage, data={"awb": "AWB-9"})
        webhook_order_pump(order_id=order.pk)
        posted = [e["type"] for e in receiver.events()]
    assert posted[-3:] == stages
