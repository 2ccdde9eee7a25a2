"""The customer hears when an order goes on hold for a pharmacist, when the hold ends with
the prescription approved, and why a hold that timed out was cancelled. Inline pipeline,
real database; the messages are read from the simulator's ledger."""

import datetime

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from core.tests.factories import ApiClientFactory
from notifications.messages import DEFAULTS
from notifications.models import NotificationTemplate
from orders.models import OrderEvent
from orders.tasks import expire_holds
from orders.tests.factories import ADDRESS, place_order
from prescriptions.enums import PrescriptionStatus
from prescriptions.services import prescription_review
from prescriptions.tests.factories import prescription_with

pytestmark = pytest.mark.django_db
EMAIL = "a.rao@example.com"
TIMEOUT = 3600


@pytest.fixture
def client(demo_catalog, simulator, settings):
    settings.COT_PIPELINE_MODE = "inline"
    settings.COT_HOLD_TIMEOUT_SECONDS = TIMEOUT
    return ApiClientFactory()


@pytest.fixture
def place(client, django_capture_on_commit_callbacks):
    def place(items, prescription=None):
        with django_capture_on_commit_callbacks(execute=True):
            order = place_order(
                client,
                items=items,
                prescription_id=prescription.pk if prescription else None,
                delivery_address={**ADDRESS, "email": EMAIL},
            )
        order.refresh_from_db()
        return order

    return place


@pytest.fixture
def pending(client):
    return prescription_with(
        [("AMOX-500", 10)], client=client, status=PrescriptionStatus.PENDING_REVIEW
    )


def decide(prescription, decision, django_capture_on_commit_callbacks):
    pharmacist = User.objects.create_user(f"ph-{decision}", is_staff=True)
    with django_capture_on_commit_callbacks(execute=True):
        prescription_review(prescription_id=prescription.pk, reviewer=pharmacist, decision=decision)


def messages(simulator, order, event=None):
    """{channel: text} of the order's messages about `event`, or the events told of."""
    key = f"order:{order.pk}:notify:"
    sent = [m for m in simulator.ledger()["messages"] if m["idempotency_key"].startswith(key)]
    if event is None:
        return sorted({m["idempotency_key"][len(key) :].split(":")[0] for m in sent})
    told = [m for m in sent if m["idempotency_key"].startswith(f"{key}{event}:")]
    assert len(told) == len({m["channel"] for m in told}), "one message per channel"
    return {m["channel"]: m for m in told}


def test_the_customer_is_told_of_the_hold_then_of_the_resume(
    place, pending, simulator, django_capture_on_commit_callbacks
):
    order = place([("AMOX-500", 2)], pending)
    assert order.status == "on_hold"
    held = messages(simulator, order, "order.on_hold")
    assert held["sms"]["text"] == (
        f"Your order {order.number} is waiting for our pharmacist to check your "
        "prescription. We will message you as soon as it is checked."
    )
    assert held["email"]["to"] == EMAIL
    subject = f"Your order {order.number} is waiting for a prescription check"
    assert held["email"]["subject"] == subject
    assert "Amoxicillin" in held["email"]["text"]

    decide(pending, "approved", django_capture_on_commit_callbacks)

    order.refresh_from_db()
    assert order.status == "confirmed"
    resumed = messages(simulator, order, "order.resumed")
    assert resumed["sms"]["text"] == (
        f"Our pharmacist has checked your prescription: your order {order.number} is going ahead."
    )
    assert resumed["email"]["subject"] == (
        f"Your prescription is checked: order {order.number} is going ahead"
    )
    # The resume is told of; the order's two `order.processing` events are not.
    types = list(order.events.values_list("type", flat=True))
    first, again = [i for i, t in enumerate(types) if t == "order.processing"]
    assert types[again - 1] == "order.resumed" and "order.resumed" not in types[:first]
    assert messages(simulator, order) == ["order.confirmed", "order.on_hold", "order.resumed"]


def test_an_order_that_never_waited_hears_of_no_hold(place, simulator):
    order = place([("PARA-500", 1)])
    assert order.status == "confirmed"
    assert messages(simulator, order) == ["order.confirmed"]


def test_a_rejected_prescription_after_the_hold_is_told_as_a_rejection_not_a_resume(
    place, pending, simulator, django_capture_on_commit_callbacks
):
    order = place([("AMOX-500", 2)], pending)
    decide(pending, "rejected", django_capture_on_commit_callbacks)
    assert messages(simulator, order) == ["order.on_hold", "order.rejected"]
    assert messages(simulator, order, "order.rejected")["sms"]["text"] == (
        f"We could not accept your order {order.number} (prescription rejected)."
    )


def test_a_hold_that_timed_out_is_told_as_a_cancellation_in_words(
    place, pending, simulator, django_capture_on_commit_callbacks
):
    order = place([("AMOX-500", 2)], pending)
    OrderEvent.objects.filter(order_id=order.pk, type="order.on_hold").update(
        at=timezone.now() - datetime.timedelta(seconds=TIMEOUT + 1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert expire_holds() == 1

    cancelled = messages(simulator, order, "order.cancelled")
    assert cancelled["sms"]["text"] == (
        f"Your order {order.number} was cancelled (our pharmacist could not check your "
        "prescription in time)."
    )
    in_words = "(our pharmacist could not check your prescription in time)"
    assert in_words in cancelled["email"]["text"]
    assert messages(simulator, order) == ["order.cancelled", "order.on_hold"]


def test_the_hold_messages_are_seeded_as_editable_templates():
    for event in ("order.on_hold", "order.resumed"):
        for channel in ("sms", "email"):
            template = NotificationTemplate.objects.get(event_type=event, channel=channel)
            assert (template.subject, template.body) == (
                DEFAULTS[(event, channel)].subject,
                DEFAULTS[(event, channel)].body,
            )
