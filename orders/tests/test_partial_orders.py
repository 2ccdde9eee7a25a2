"""`"on_partial": "ship_available"`: lines failing the prescription rules are dropped and
the rest is reserved, charged and shipped (inline pipeline, real database and simulator)."""

import datetime
import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from core.tests.factories import ApiClientFactory, api_key_for
from inventory.models import ReservationItem, StockBatch
from logistics.models import ShipmentItem
from orders.enums import OrderStatus
from orders.models import Order
from orders.services import steps
from orders.tests.factories import ORDER_BODY, place_order
from payments.models import Payment
from prescriptions.enums import PrescriptionStatus
from prescriptions.models import H1RegisterEntry, PrescriptionItem
from prescriptions.services import LineReview, prescription_review
from prescriptions.tests.factories import prescription_with

pytestmark = pytest.mark.django_db

# One OTC line and two Rx lines (schedule h and h1): 2 x 30 + 2 x 95 + 2 x 110.
ITEMS = [("PARA-500", 2), ("AMOX-500", 2), ("CEFI-200", 2)]
RX_ITEMS = [("AMOX-500", 10), ("CEFI-200", 4)]


@pytest.fixture
def client(demo_catalog, simulator, settings):
    settings.COT_PIPELINE_MODE = "inline"
    return ApiClientFactory()


@pytest.fixture
def run(client, django_capture_on_commit_callbacks):
    def place(items=ITEMS, prescription=None, on_partial="ship_available"):
        with django_capture_on_commit_callbacks(execute=True):
            order = place_order(
                client,
                items=items,
                prescription_id=prescription.pk if prescription else None,
                on_partial=on_partial,
            )
        order.refresh_from_db()
        return order

    return place


@pytest.fixture
def pharmacist(db):
    return User.objects.create_user("ph", is_staff=True)


@pytest.fixture
def strike_out(pharmacist, django_capture_on_commit_callbacks):
    def strike(prescription, sku):
        with django_capture_on_commit_callbacks(execute=True):
            prescription_review(
                prescription_id=prescription.pk,
                reviewer=pharmacist,
                decision="partial",
                lines=[LineReview(sku=sku, decision="rejected", reason="interaction")],
            )

    return strike


def stock(sku):
    """(reserved, on_hand) of the SKU over all its batches."""
    batches = StockBatch.objects.filter(product__sku=sku)
    return (
        sum(batches.values_list("reserved", flat=True)),
        sum(batches.values_list("on_hand", flat=True)),
    )


def line_states(order):
    return {l.sku: (l.status, l.drop_reason) for l in order.lines.all()}


def charges(simulator, order):
    return [c for c in simulator.ledger()["charges"] if str(order.pk) in c["idempotency_key"]]


def events(order, type_):
    return [e.data for e in order.events.filter(type=type_)]


def api_order(client, order):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(client)}")
    return api.get(f"/api/v1/orders/{order.pk}/").json()


def test_a_struck_out_line_is_dropped_never_reserved_and_the_rest_charged_and_shipped(
    run, client, simulator, strike_out
):
    prescription = prescription_with(
        RX_ITEMS, client=client, status=PrescriptionStatus.PENDING_REVIEW
    )
    strike_out(prescription, "CEFI-200")
    before = {sku: stock(sku) for sku, _ in ITEMS}

    order = run(prescription=prescription)

    assert order.status == OrderStatus.CONFIRMED, order.failure_reason
    assert line_states(order) == {
        "PARA-500": ("active", ""),
        "AMOX-500": ("active", ""),
        "CEFI-200": ("dropped", "prescription_rejected"),
    }
    assert order.total_amount == Decimal("250.00")
    [charge] = charges(simulator, order)
    assert (charge["status"], charge["amount"]) == ("captured", "250.00")
    assert Payment.objects.get(order_id=order.pk).amount == Decimal("250.00")
    # The dropped line was never reserved; the others left the shelf.
    assert stock("CEFI-200") == before["CEFI-200"]
    for sku in ("PARA-500", "AMOX-500"):
        assert stock(sku) == (before[sku][0], before[sku][1] - 2)
    assert events(order, "prescription.line_rejected") == [
        {"sku": "CEFI-200", "reason": "prescription_rejected"}
    ]
    # Nothing of the dropped line is claimed, shipped or written in the H1 register.
    assert dict(PrescriptionItem.objects.values_list("sku", "dispensed_quantity")) == {
        "AMOX-500": 2,
        "CEFI-200": 0,
    }
    assert not H1RegisterEntry.objects.exists()
    shown = api_order(client, order)
    assert shown["on_partial"] == "ship_available"
    assert [(i["sku"], i["status"], i["reason"]) for i in shown["items"]] == [
        ("PARA-500", "active", None),
        ("AMOX-500", "active", None),
        ("CEFI-200", "dropped", "prescription_rejected"),
    ]
    assert shown["total_amount"] == shown["payment"]["amount"] == "250.00"
    shipped = {i["sku"] for s in shown["shipments"] for i in s["items"]}
    assert shipped == {"PARA-500", "AMOX-500"}


def test_without_a_prescription_the_rx_line_is_dropped_and_the_otc_line_confirmed(run, simulator):
    order = run(items=[("PARA-500", 2), ("AMOX-500", 1)])
    assert order.status == OrderStatus.CONFIRMED
    assert line_states(order)["AMOX-500"] == ("dropped", "prescription_required")
    assert order.total_amount == Decimal("60.00")
    assert [c["amount"] for c in charges(simulator, order)] == ["60.00"]
    assert stock("AMOX-500")[0] == 0


def test_each_rx_line_is_held_to_its_own_schedules_validity(run, client, simulator):
    # Older than the h1 window (30 days), within the h window (180 days).
    issued = timezone.localdate() - datetime.timedelta(days=60)
    prescription = prescription_with(RX_ITEMS, client=client, issued_on=issued)
    partial = run(prescription=prescription)
    assert partial.status == OrderStatus.CONFIRMED
    assert line_states(partial)["CEFI-200"] == ("dropped", "prescription_expired")
    assert line_states(partial)["AMOX-500"] == ("active", "")
    assert [c["amount"] for c in charges(simulator, partial)] == ["250.00"]

    whole = run(prescription=prescription, on_partial="reject")
    assert (whole.status, whole.failure_reason) == ("rejected", "prescription_expired")
    assert charges(simulator, whole) == []


def test_every_line_failing_rejects_the_order_as_today(run, client, simulator):
    issued = timezone.localdate() - datetime.timedelta(days=200)
    prescription = prescription_with(RX_ITEMS, client=client, issued_on=issued)
    order = run(items=[("AMOX-500", 1), ("CEFI-200", 1)], prescription=prescription)
    assert (order.status, order.failure_reason) == ("rejected", "prescription_expired")
    assert not events(order, "prescription.line_rejected")
    assert stock("AMOX-500")[0] == stock("CEFI-200")[0] == 0
    assert charges(simulator, order) == []


def test_a_reject_order_with_a_failing_line_is_rejected_as_today(run, simulator):
    order = run(items=[("PARA-500", 2), ("AMOX-500", 1)], on_partial="reject")
    assert (order.status, order.failure_reason) == ("rejected", "prescription_required")
    assert line_states(order)["AMOX-500"] == ("active", "")
    assert stock("PARA-500")[0] == 0
    assert charges(simulator, order) == []


def test_on_hold_then_a_partial_review_releases_the_struck_out_line_and_charges_the_rest(
    run, client, simulator, strike_out
):
    prescription = prescription_with(
        RX_ITEMS, client=client, status=PrescriptionStatus.PENDING_REVIEW
    )
    before = stock("CEFI-200")
    order = run(prescription=prescription)
    assert order.status == OrderStatus.ON_HOLD
    assert stock("CEFI-200")[0] == before[0] + 2  # held while waiting
    assert Payment.objects.get(order_id=order.pk).amount == Decimal("470.00")

    strike_out(prescription, "CEFI-200")

    order.refresh_from_db()
    assert order.status == OrderStatus.CONFIRMED, order.failure_reason
    assert line_states(order)["CEFI-200"] == ("dropped", "prescription_rejected")
    assert stock("CEFI-200") == before  # its held units went back, nothing committed
    assert not ReservationItem.objects.filter(
        reservation__order_id=order.pk, batch__product__sku="CEFI-200"
    ).exists()
    assert order.total_amount == Decimal("250.00")
    assert Payment.objects.get(order_id=order.pk).amount == Decimal("250.00")
    assert [c["amount"] for c in charges(simulator, order)] == ["250.00"]
    assert events(order, "prescription.line_rejected") == [
        {"sku": "CEFI-200", "reason": "prescription_rejected"}
    ]
    assert not H1RegisterEntry.objects.exists()


def test_on_hold_then_every_rx_line_struck_out_rejects_an_order_of_rx_lines_only(
    run, client, simulator, strike_out
):
    prescription = prescription_with(
        [("AMOX-500", 10)], client=client, status=PrescriptionStatus.PENDING_REVIEW
    )
    order = run(items=[("AMOX-500", 2)], prescription=prescription)
    assert order.status == OrderStatus.ON_HOLD
    strike_out(prescription, "AMOX-500")
    order.refresh_from_db()
    assert (order.status, order.failure_reason) == ("rejected", "prescription_rejected")
    assert stock("AMOX-500")[0] == 0
    assert charges(simulator, order) == []


def test_on_partial_must_be_known(client):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(client)}")
    body = {**ORDER_BODY, "on_partial": "maybe"}
    response = api.post("/api/v1/orders/", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "on_partial"
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    "first_step",
    ["order_reserve_stock", "order_check_prescription"],
    ids=["reserved-before-the-strike", "checked-before-the-strike"],
)
def test_a_line_struck_out_between_the_parallel_header_reads_is_never_shipped(
    client, simulator, pharmacist, first_step
):
    """The header steps read the prescription each for themselves: whichever ran before
    the pharmacist struck the line out, the line is dropped, its held units go back and
    the charge is for the rest."""
    prescription = prescription_with(
        RX_ITEMS, client=client, status=PrescriptionStatus.PENDING_REVIEW
    )
    before = stock("CEFI-200")
    order = place_order(
        client, items=ITEMS, prescription_id=prescription.pk, on_partial="ship_available"
    )
    getattr(steps, first_step)(order.pk)
    # Decided meanwhile (its news to waiting orders is not what this test is about).
    prescription_review(
        prescription_id=prescription.pk,
        reviewer=pharmacist,
        decision="partial",
        lines=[LineReview(sku="CEFI-200", decision="rejected", reason="interaction")],
    )
    for step in ("order_check_prescription", "order_reserve_stock", "order_prepare_payment"):
        getattr(steps, step)(order.pk)
    assert steps.order_charge_payment(order.pk) == "captured"
    steps.order_book_shipment(order.pk)
    assert steps.order_confirm(order.pk) == OrderStatus.CONFIRMED

    order.refresh_from_db()
    assert line_states(order)["CEFI-200"] == ("dropped", "prescription_rejected")
    assert stock("CEFI-200") == before
    assert [c["amount"] for c in charges(simulator, order)] == ["250.00"]
    assert len(events(order, "prescription.line_rejected")) == 1
    shipped = set(
        ShipmentItem.objects.filter(shipment__order_id=order.pk).values_list("sku", flat=True)
    )
    assert shipped == {"PARA-500", "AMOX-500"}
