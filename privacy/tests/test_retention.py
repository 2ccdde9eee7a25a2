"""The retention job on the real database: an order ended more than COT_PII_RETENTION_DAYS
ago loses its personal data in every place it was copied, the prescription and the H1
register keep theirs for as long as the law says and then lose it too, and a second run
changes nothing. Time is moved by moving the rows' timestamps, as if it had passed."""

from __future__ import annotations

import datetime
import io
from pathlib import Path

import pytest
from celery import current_app as app
from django.core.management import call_command
from django.utils import timezone
from prometheus_client import REGISTRY

from core.tests.factories import ApiClientFactory
from notifications.models import Notification
from orders.models import Order, OrderEvent
from orders.services.transitions import order_event_record
from orders.tests.factories import place_order
from prescriptions.models import H1RegisterEntry, Prescription
from privacy.models import Redaction
from privacy.services import pii_redact_expired
from privacy.shredders import REDACTED
from privacy.tasks import redact_expired_pii
from privacy.tests.conftest import CONTACT_VALUES, PATIENT, PHONE, age
from privacy.tests.search import columns_holding, snapshot

pytestmark = pytest.mark.django_db
KEPT_BY_LAW = {
    "prescriptions.Prescription.patient_name",
    "prescriptions.H1RegisterEntry.patient_name",
}


def redactions(kind: str, cause: str = "retention") -> float:
    labels = {"kind": kind, "cause": cause}
    return REGISTRY.get_sample_value("cot_pii_redactions_total", labels) or 0.0


def test_an_order_past_retention_is_redacted_everywhere_and_the_register_keeps_its_name(
    history, django_capture_on_commit_callbacks
):
    age(history, days=400)
    # Before: the customer's data is copied into the order, its messages, its timeline
    # (and so every webhook), the return and the register.
    assert {"orders.Order.delivery_address", "notifications.Notification.to"} <= columns_holding(
        PHONE
    )
    assert "orders.OrderEvent.data" in columns_holding("ring Zephyrine")
    counted = redactions("order")

    with django_capture_on_commit_callbacks(execute=True):
        run = pii_redact_expired()

    assert sorted(run.orders) == sorted(o.pk for o in history.orders)
    assert run.prescriptions == [] and run.registers == []
    for value in CONTACT_VALUES:
        assert columns_holding(value) == set(), value
    # The law keeps the patient's name on the prescription (2 years) and the H1 register
    # (3 years).
    assert columns_holding(PATIENT) == KEPT_BY_LAW
    order = Order.objects.get(pk=history.delivered.pk)
    assert order.delivery_address == {
        "name": REDACTED,
        "line1": REDACTED,
        "line2": REDACTED,
        "city": "Bengaluru",
        "state": "KA",
        "pincode": "560001",
        "phone": REDACTED,
        "email": REDACTED,
    }
    sms = Notification.objects.filter(order_id=order.pk).first()
    assert (sms.to, sms.text) == (REDACTED, REDACTED)
    cancelled = OrderEvent.objects.get(order=history.cancelled, type="order.cancelled")
    assert cancelled.data["note"] == REDACTED and cancelled.data["reason"] == "cancelled_by_client"
    assert Prescription.objects.get().image  # kept with the prescription
    assert set(Redaction.objects.values_list("kind", "subject_id", "cause")) == {
        ("order", o.pk, "retention") for o in history.orders
    }
    assert redactions("order") == counted + 3

    # A second run finds nothing and changes nothing.
    before = snapshot()
    again = pii_redact_expired()
    assert (again.orders, again.prescriptions, again.registers, again.rows) == ([], [], [], {})
    assert snapshot() == before
    assert redactions("order") == counted + 3


def test_the_prescription_goes_after_two_years_and_the_register_after_three(
    history, django_capture_on_commit_callbacks
):
    image = Path(Prescription.objects.get().image.path)
    assert image.exists()

    age(history, days=2 * 366 + 2)
    run = pii_redact_expired()

    assert run.prescriptions == [history.prescription.pk] and len(run.orders) == 3
    prescription = Prescription.objects.get()
    assert (prescription.patient_name, prescription.image.name) == (REDACTED, "")
    assert not image.exists()
    assert prescription.doctor_registration_no == "KMC-12345"  # the prescriber's, not the patient's
    assert columns_holding(PATIENT) == {"prescriptions.H1RegisterEntry.patient_name"}

    age(history, days=3 * 366 + 2)
    counted = redactions("register")
    with django_capture_on_commit_callbacks(execute=True):
        run = pii_redact_expired()

    assert (run.orders, run.prescriptions, run.registers) == ([], [], [history.delivered.pk])
    assert columns_holding(PATIENT) == set()
    entry = H1RegisterEntry.objects.get(order_id=history.delivered.pk)
    assert (entry.patient_name, entry.sku, entry.quantity) == (REDACTED, "CEFI-200", 2)
    assert redactions("register") == counted + 1
    assert pii_redact_expired().registers == []


def test_orders_still_in_use_are_left_alone_and_a_dry_run_changes_nothing(demo_catalog):
    client = ApiClientFactory()
    long_ago = timezone.now() - datetime.timedelta(days=400)
    ended, in_progress, recent, touched = (
        place_order(client, items=[("PARA-500", 1)]) for _ in range(4)
    )
    Order.objects.filter(pk__in=[ended.pk, recent.pk, touched.pk]).update(status="delivered")
    old = [ended.pk, in_progress.pk, touched.pk]
    Order.objects.filter(pk__in=old).update(created_at=long_ago, updated_at=long_ago)
    OrderEvent.objects.filter(order_id__in=old).update(at=long_ago)
    # A refund or a message ten days ago: the order was still in use.
    order_event_record(order_id=touched.pk, type="payment.refunded", data={"reason": "late"})

    out = io.StringIO()
    call_command("redact_expired_pii", "--dry-run", "-v", "2", stdout=out)
    assert f"orders due: 1\n  {ended.pk}" in out.getvalue()
    assert Order.objects.get(pk=ended.pk).delivery_address["name"] == "A. Rao"
    assert not Redaction.objects.exists()

    # The daily job, as beat sends it: on the maintenance queue.
    entry = app.conf.beat_schedule["redact-expired-pii"]
    assert entry["task"] == "privacy.redact_expired_pii"
    assert entry["options"]["queue"] == "maintenance"
    assert app.amqp.router.route({}, "privacy.redact_expired_pii")["queue"].name == "maintenance"
    redact_expired_pii.apply()

    assert Order.objects.get(pk=ended.pk).delivery_address["name"] == REDACTED
    for untouched in (in_progress, recent, touched):
        assert Order.objects.get(pk=untouched.pk).delivery_address["name"] == "A. Rao"
    out = io.StringIO()
    call_command("redact_expired_pii", stdout=out)
    assert "orders redacted: 0" in out.getvalue()
