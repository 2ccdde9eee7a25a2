"""Prescription rules through the pipeline (inline mode, real database and simulator)."""

import datetime

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from core.tests.factories import ApiClientFactory
from inventory.models import StockBatch
from orders.enums import OrderStatus
from orders.models import Order
from orders.services.ending import order_end
from orders.tasks import sweep_stuck_orders
from orders.tests.factories import place_order
from payments.models import Payment
from prescriptions.enums import PrescriptionStatus
from prescriptions.models import H1RegisterEntry, PrescriptionItem
from prescriptions.services import prescription_review
from prescriptions.tests.factories import prescription_with

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(demo_catalog, simulator, settings):
    settings.COT_PIPELINE_MODE = "inline"
    return ApiClientFactory()


@pytest.fixture
def run(client, django_capture_on_commit_callbacks):
    def place(items, prescription=None, customer_id="C-1001"):
        with django_capture_on_commit_callbacks(execute=True):
            order = place_order(
                client,
                items=items,
                customer_id=customer_id,
                prescription_id=prescription.pk if prescription else None,
            )
        order.refresh_from_db()
        return order

    return place


@pytest.fixture
def pharmacist(db):
    return User.objects.create_user("ph", is_staff=True)


def decide(prescription, decision, pharmacist, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        prescription_review(prescription_id=prescription.pk, reviewer=pharmacist, decision=decision)


def events(order):
    return list(order.events.values_list("type", flat=True))


def reserved(sku):
    return sum(StockBatch.objects.filter(product__sku=sku).values_list("reserved", flat=True))


def test_approved_prescription_confirms_and_records_dispensing_and_the_h1_register(run, client):
    prescription = prescription_with([("CEFI-200", 4), ("AMOX-500", 10)], client=client)
    order = run([("CEFI-200", 2), ("AMOX-500", 10), ("PARA-500", 1)], prescription)
    assert order.status == OrderStatus.CONFIRMED, events(order)
    assert "prescription.validated" in events(order)
    items = dict(PrescriptionItem.objects.values_list("sku", "dispensed_quantity"))
    assert items == {"CEFI-200": 2, "AMOX-500": 10}
    entry = H1RegisterEntry.objects.get()
    assert (entry.order_number, entry.sku, entry.quantity, entry.doctor_registration_no) == (
        order.number,
        "CEFI-200",
        2,
        "KMC-12345",
    )
    assert entry.batch


def test_pending_review_holds_the_order_with_stock_then_approval_confirms_it(
    run, client, pharmacist, django_capture_on_commit_callbacks, simulator
):
    prescription = prescription_with(
        [("AMOX-500", 10)], client=client, status=PrescriptionStatus.PENDING_REVIEW
    )
    order = run([("AMOX-500", 2)], prescription)
    assert order.status == OrderStatus.ON_HOLD
    assert reserved("AMOX-500") == 2
    assert simulator.ledger()["charges"] == []

    decide(prescription, "approved", pharmacist, django_capture_on_commit_callbacks)

    order.refresh_from_db()
    assert order.status == OrderStatus.CONFIRMED
    assert events(order).count("order.processing") == 2
    assert len(simulator.ledger()["charges"]) == 1


def test_rejection_ends_on_hold_orders_and_compensates(
    run, client, pharmacist, django_capture_on_commit_callbacks, simulator
):
    prescription = prescription_with(
        [("AMOX-500", 10)], client=client, status=PrescriptionStatus.PENDING_REVIEW
    )
    first, second = run([("AMOX-500", 2)], prescription), run([("AMOX-500", 3)], prescription)

    decide(prescription, "rejected", pharmacist, django_capture_on_commit_callbacks)

    for order in (first, second):
        order.refresh_from_db()
        assert (order.status, order.failure_reason) == ("rejected", "prescription_rejected")
        assert {"prescription.failed", "order.rejected", "inventory.released"} <= set(events(order))
        assert Payment.objects.get(order_id=order.pk).status == "voided"
    assert reserved("AMOX-500") == 0
    assert simulator.ledger()["charges"] == []


def test_quantity_is_exhausted_across_two_orders(run, client):
    prescription = prescription_with([("AMOX-500", 10)], client=client)
    first = run([("AMOX-500", 6)], prescription)
    second = run([("AMOX-500", 6)], prescription)
    assert first.status == OrderStatus.CONFIRMED
    assert (second.status, second.failure_reason) == ("rejected", "prescription_quantity_exceeded")
    assert PrescriptionItem.objects.get().dispensed_quantity == 6


def test_ending_an_order_returns_its_dispensed_quantity(run, client):
    prescription = prescription_with([("AMOX-500", 10)], client=client)
    order = run([("AMOX-500", 6)], prescription)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.PROCESSING)  # as if mid-run
    order.refresh_from_db()
    assert order_end(order=order, to=OrderStatus.CANCELLED, reason="cancelled_by_ops")
    assert PrescriptionItem.objects.get().dispensed_quantity == 0


@pytest.mark.parametrize(
    ("kwargs", "items", "reason"),
    [
        ({"customer_id": "C-OTHER"}, [("AMOX-500", 1)], "prescription_invalid"),
        (
            {"issued_on": timezone.localdate() - datetime.timedelta(days=200)},
            [("AMOX-500", 1)],
            "prescription_expired",
        ),
        (
            {"issued_on": timezone.localdate() + datetime.timedelta(days=2)},
            [("AMOX-500", 1)],
            "prescription_invalid",
        ),
        ({}, [("CEFI-200", 1)], "prescription_invalid"),  # not named on the prescription
        ({}, [("AMOX-500", 11)], "prescription_quantity_exceeded"),
        ({"status": PrescriptionStatus.REJECTED}, [("AMOX-500", 1)], "prescription_rejected"),
        ({}, [("MPHD-10", 1)], "not_sellable_online"),
    ],
)
def test_every_rule_rejects_with_its_reason(run, client, simulator, kwargs, items, reason):
    prescription = prescription_with([("AMOX-500", 10), ("MPHD-10", 5)], client=client, **kwargs)
    order = run(items, prescription)
    assert (order.status, order.failure_reason) == ("rejected", reason)
    assert reserved(items[0][0]) == 0
    assert simulator.ledger()["charges"] == []


def test_a_review_that_lands_before_the_hold_is_picked_up_by_the_sweeper(
    run, client, pharmacist, simulator, django_capture_on_commit_callbacks
):
    prescription = prescription_with(
        [("AMOX-500", 10)], client=client, status=PrescriptionStatus.PENDING_REVIEW
    )
    order = run([("AMOX-500", 1)], prescription)
    assert order.status == OrderStatus.ON_HOLD
    # Decided, but the news never reached the order (no on_commit: as if lost).
    prescription_review(prescription_id=prescription.pk, reviewer=pharmacist, decision="approved")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.ON_HOLD

    with django_capture_on_commit_callbacks(execute=True):
        sweep_stuck_orders()

    assert Order.objects.get(pk=order.pk).status == OrderStatus.CONFIRMED
