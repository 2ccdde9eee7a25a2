"""The out-for-delivery message of a parcel delivered against the customer's OTP tells the
OTP (read from the shipment: it is never in the order's timeline), whatever the template."""

import importlib

import pytest
from django.apps import apps as django_apps

from core.tests.factories import ApiClientFactory
from logistics.models import Shipment
from notifications.messages import DEFAULTS
from notifications.models import NotificationTemplate
from notifications.tasks import notify_customer
from orders.models import OrderEvent
from orders.services.transitions import order_event_record
from orders.tests.factories import ADDRESS, place_order

pytestmark = pytest.mark.django_db
EVENT = "shipment.out_for_delivery"
OTP = "482913"


@pytest.fixture
def order(demo_catalog):
    order = place_order(
        ApiClientFactory(),
        items=[("PARA-500", 2)],
        delivery_address={**ADDRESS, "email": "a.rao@example.com"},
    )
    for center, awb, otp in (("BLR-1", "AWB-RX", OTP), ("DEL-1", "AWB-OTC", "")):
        Shipment.objects.create(
            order_id=order.pk,
            center=center,
            partner="swift",
            awb=awb,
            idempotency_key=f"order:{order.pk}:ship:{center}",
            delivery_otp=otp,
        )
    return order


def out_for_delivery(simulator, order, awb):
    """The event as the tracking webhook records it, its message task run: the texts sent,
    by channel."""
    event = order_event_record(order_id=order.pk, type=EVENT, data={"awb": awb, "attempt": 1})
    notify_customer.apply(args=(str(order.pk), EVENT, event.pk))
    key = f"order:{order.pk}:notify:{EVENT}:"
    return {
        m["channel"]: m["text"]
        for m in simulator.ledger()["messages"]
        if m["idempotency_key"].startswith(key) and m["idempotency_key"].endswith(f":{event.pk}")
    }


def test_the_customer_is_given_the_otp_of_the_parcel_that_needs_one(simulator, order):
    texts = out_for_delivery(simulator, order, "AWB-RX")
    assert texts["sms"] == (
        f"Your order {order.number} is out for delivery and will reach you today. "
        f"Give the courier this OTP to receive it: {OTP}"
    )
    assert f"only against this OTP: {OTP}." in texts["email"]
    # The OTP is read from the shipment: the timeline (and the client's webhooks) never
    # carry it.
    assert all(OTP not in str(e.data) for e in OrderEvent.objects.filter(order_id=order.pk))

    plain = out_for_delivery(simulator, order, "AWB-OTC")
    assert plain["sms"] == (
        f"Your order {order.number} is out for delivery and will reach you today."
    )
    assert "OTP" not in plain["email"]


def test_an_edited_template_without_the_otp_still_tells_it(simulator, order):
    NotificationTemplate.objects.filter(event_type=EVENT, channel="sms").update(
        body="{{ number }} arrives today."
    )
    texts = out_for_delivery(simulator, order, "AWB-RX")
    assert texts["sms"] == (
        f"{order.number} arrives today. Delivery OTP: {OTP}. The courier hands the parcel "
        "over only against it."
    )
    assert out_for_delivery(simulator, order, "AWB-OTC")["sms"] == f"{order.number} arrives today."


def test_unedited_seeded_templates_are_moved_to_the_text_with_the_otp():
    migration = importlib.import_module("notifications.migrations.0006_out_for_delivery_otp")
    templates = NotificationTemplate.objects.filter(event_type=EVENT)
    for channel in ("sms", "email"):
        assert migration.AFTER[channel] == DEFAULTS[(EVENT, channel)].body
        assert "delivery_otp" not in migration.BEFORE[channel]
    # As seeded before: the SMS never edited, the e-mail edited by staff.
    templates.filter(channel="sms").update(body=migration.BEFORE["sms"])
    templates.filter(channel="email").update(body="Edited {{ number }}")
    migration.forwards(django_apps, None)
    assert dict(templates.values_list("channel", "body")) == {
        "sms": migration.AFTER["sms"],
        "email": "Edited {{ number }}",
    }
