"""Cancelling some units of a confirmed order before pickup: the lines shrink, the units go
back on the shelf and out of their parcels (the partner's booking amended, an emptied one
cancelled), prescribed quantities go back, and exactly their price is refunded (cash on
delivery: the amount due shrinks). Inline pipeline, real simulator and database."""

import datetime
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from inventory.models import ReservationItem, StockBatch
from inventory.tests.factories import CenterFactory, ProductFactory, StockBatchFactory
from inventory.tests.test_concurrency import race
from logistics.enums import ShipmentStatus
from logistics.models import Shipment, ShipmentItem
from orders.enums import OrderStatus
from orders.models import Order, OrderLine
from orders.services.cancellation import (
    LineCancel,
    QuantityExceeded,
    order_lines_cancel,
)
from orders.tests.test_cancel import cancel
from payments.models import Payment
from prescriptions.enums import H1EntryType
from prescriptions.models import H1RegisterEntry, PrescriptionItem
from prescriptions.tests.factories import prescription_with

pytestmark = pytest.mark.django_db


def in_days(n: int) -> datetime.date:
    return datetime.date.today() + datetime.timedelta(days=n)


@pytest.fixture
def two_batches(demo_catalog):
    """A product in two batches at BLR-1: an order of 5 takes all 3 of the one that
    expires first (FEFO) and 2 of the later one."""
    product = ProductFactory(sku="TWO-BATCH", price=Decimal("40.00"))
    center = CenterFactory(code="BLR-1")
    StockBatchFactory(
        product=product, center=center, batch="EARLY", expires_on=in_days(90), on_hand=3
    )
    StockBatchFactory(
        product=product, center=center, batch="LATE", expires_on=in_days(400), on_hand=10
    )
    return product


def on_hand(batch: str) -> int:
    return StockBatch.objects.get(batch=batch).on_hand


def snapshot(order: Order) -> dict:
    """Everything a refused cancel must leave as it was."""
    return {
        "order": Order.objects.filter(pk=order.pk).values("status", "total_amount").get(),
        "lines": list(OrderLine.objects.filter(order=order).values_list("sku", "quantity")),
        "stock": sorted(StockBatch.objects.values_list("pk", "on_hand", "reserved")),
        "reserved": sorted(
            ReservationItem.objects.filter(reservation__order_id=order.pk).values_list(
                "batch_id", "quantity"
            )
        ),
        "parcels": sorted(
            ShipmentItem.objects.filter(shipment__order_id=order.pk).values_list(
                "sku", "batch", "quantity"
            )
        ),
        "payment": Payment.objects.filter(order_id=order.pk).values("amount", "status").get(),
        "events": list(order.events.values_list("type", flat=True)),
        "rx": list(PrescriptionItem.objects.values_list("pk", "dispensed_quantity")),
    }


def read(key: str, order: Order) -> dict:
    """The order as the API shows it once everything after the commit has run."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client.get(f"/api/v1/orders/{order.pk}/").json()


def mine(entries: list[dict], order: Order) -> list[dict]:
    return [e for e in entries if str(order.pk) in (e.get("idempotency_key") or "")]


def test_some_units_are_cancelled_restocked_unbooked_and_refunded_once(
    shop, place, simulator, two_batches, django_capture_on_commit_callbacks
):
    order = place(items=[("TWO-BATCH", 5), ("PARA-500", 2)])
    assert order.status == OrderStatus.CONFIRMED and order.total_amount == Decimal("260.00")
    assert (on_hand("EARLY"), on_hand("LATE")) == (0, 8)
    body = {"reason": "too many", "lines": [{"sku": "TWO-BATCH", "quantity": 3}]}

    response = cancel(shop[1], order.pk, body, capture=django_capture_on_commit_callbacks)

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "confirmed"
    answer = read(shop[1], order)
    assert (answer["status"], answer["failure_reason"]) == ("confirmed", None)
    assert [
        (i["sku"], i["quantity"], i["cancelled_quantity"], i["line_total"]) for i in answer["items"]
    ] == [("TWO-BATCH", 2, 3, "80.00"), ("PARA-500", 2, 0, "60.00")]
    assert answer["total_amount"] == "140.00"
    # The payment is still for what was captured; 120.00 of it went back.
    assert answer["payment"]["amount"] == "260.00"
    assert answer["payment"]["refunded_amount"] == "120.00"
    assert answer["payment"]["status"] == "partially_refunded"
    # Latest-expiring first: the 2 LATE units and 1 EARLY go back on the shelf.
    assert (on_hand("EARLY"), on_hand("LATE")) == (1, 10)
    assert list(
        ReservationItem.objects.filter(
            reservation__order_id=order.pk, batch__product=two_batches
        ).values_list("batch__batch", "quantity")
    ) == [("EARLY", 2)]
    [shipment] = answer["shipments"]
    assert shipment["status"] == "booked"
    parcel = [(i["sku"], i["batch"], i["quantity"]) for i in shipment["items"]]
    assert [(batch, n) for sku, batch, n in parcel if sku == "TWO-BATCH"] == [("EARLY", 2)]
    assert sum(n for sku, _, n in parcel if sku == "PARA-500") == 2
    ledger = simulator.ledger()
    [amendment] = ledger["amendments"]
    assert amendment["awb"] == shipment["awb"]
    assert amendment["idempotency_key"] == f"order:{order.pk}:amend:1:BLR-1"
    assert amendment["items"] == [
        {"sku": "PARA-500", "quantity": 2},
        {"sku": "TWO-BATCH", "quantity": 2},
    ]
    assert ledger["cancellations"] == []
    [refund] = mine(ledger["refunds"], order)
    assert refund["amount"] == "120.00"
    timeline = Order.objects.get(pk=order.pk).events
    assert timeline.get(type="order.lines_cancelled").data == {
        "lines": [{"sku": "TWO-BATCH", "quantity": 3}],
        "amount": "120.00",
        "by": "client:web-shop",
        "note": "too many",
    }
    refunded = timeline.get(type="payment.refunded").data
    assert (refunded["amount"], refunded["cause"]) == ("120.00", "lines:1")

    # The rest of the line, later: a second change, its own refund and amendment.
    body = {"lines": [{"sku": "TWO-BATCH", "quantity": 2}]}
    again = cancel(shop[1], order.pk, body, capture=django_capture_on_commit_callbacks)
    assert again.status_code == 200, again.content
    assert read(shop[1], order)["total_amount"] == "60.00"
    assert (on_hand("EARLY"), on_hand("LATE")) == (3, 10)
    ledger = simulator.ledger()
    assert [r["amount"] for r in mine(ledger["refunds"], order)] == ["120.00", "80.00"]
    assert [a["idempotency_key"] for a in ledger["amendments"]] == [
        f"order:{order.pk}:amend:{n}:BLR-1" for n in (1, 2)
    ]
    assert ledger["amendments"][-1]["items"] == [{"sku": "PARA-500", "quantity": 2}]


def test_a_parcel_left_empty_is_cancelled_at_its_partner(
    shop, place, simulator, django_capture_on_commit_callbacks
):
    # Two products, each stocked at one centre only: the order is split in two parcels.
    blr, blr2 = CenterFactory(code="BLR-1"), CenterFactory(code="BLR-2", priority=9)
    here, there = ProductFactory(sku="ONLY-HERE"), ProductFactory(sku="ONLY-THERE")
    StockBatchFactory(product=here, center=blr, batch="H1", on_hand=5)
    StockBatchFactory(product=there, center=blr2, batch="T1", on_hand=5)
    order = place(items=[("ONLY-HERE", 1), ("ONLY-THERE", 2)])
    assert order.status == OrderStatus.CONFIRMED
    parcels = {s.center: s for s in Shipment.objects.filter(order_id=order.pk)}
    assert set(parcels) == {"BLR-1", "BLR-2"}

    body = {"lines": [{"sku": "ONLY-THERE", "quantity": 2}]}
    response = cancel(shop[1], order.pk, body, capture=django_capture_on_commit_callbacks)

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "confirmed"
    statuses = {s["center"]: (s["status"], s["items"]) for s in read(shop[1], order)["shipments"]}
    assert statuses["BLR-2"] == ("cancelled", [])
    assert statuses["BLR-1"][0] == "booked" and len(statuses["BLR-1"][1]) == 1
    ledger = simulator.ledger()
    assert [c["awb"] for c in ledger["cancellations"]] == [parcels["BLR-2"].awb]
    assert ledger["amendments"] == []
    assert on_hand("T1") == 5 and on_hand("H1") == 4
    assert [r["amount"] for r in mine(ledger["refunds"], order)] == ["60.00"]


def test_cash_on_delivery_owes_less_and_nothing_is_refunded(
    shop, place, simulator, django_capture_on_commit_callbacks
):
    order = place(items=[("PARA-500", 2), ("CETI-10", 3)], payment_method="cod", payment_token="")
    assert order.total_amount == Decimal("126.00")
    body = {"lines": [{"sku": "CETI-10", "quantity": 1}]}

    response = cancel(shop[1], order.pk, body, capture=django_capture_on_commit_callbacks)

    assert response.status_code == 200, response.content
    payment = response.json()["payment"]
    assert (payment["status"], payment["amount"], payment["refunded_amount"]) == (
        "pending_collection",
        "104.00",
        "0.00",
    )
    assert response.json()["total_amount"] == "104.00"
    ledger = simulator.ledger()
    assert mine(ledger["refunds"], order) == mine(ledger["payouts"], order) == []
    assert len(ledger["amendments"]) == 1


def test_prescribed_units_go_back_to_the_prescription_and_the_h1_register(
    shop, place, simulator, django_capture_on_commit_callbacks
):
    prescription = prescription_with([("CEFI-200", 10)], client=shop[0])
    order = place(items=[("CEFI-200", 4), ("PARA-500", 1)], prescription_id=prescription.pk)
    assert order.status == OrderStatus.CONFIRMED
    rx = PrescriptionItem.objects.get(sku="CEFI-200")
    assert rx.dispensed_quantity == 4
    [dispensed] = H1RegisterEntry.objects.filter(order_id=order.pk)

    body = {"lines": [{"sku": "CEFI-200", "quantity": 1}]}
    response = cancel(shop[1], order.pk, body, capture=django_capture_on_commit_callbacks)

    assert response.status_code == 200, response.content
    rx.refresh_from_db()
    assert rx.dispensed_quantity == 3
    returned = H1RegisterEntry.objects.get(order_id=order.pk, entry_type=H1EntryType.RETURNED)
    assert (returned.sku, returned.batch, returned.quantity, returned.reference) == (
        "CEFI-200",
        dispensed.batch,
        1,
        "lines:1",
    )
    assert [r["amount"] for r in mine(simulator.ledger()["refunds"], order)] == ["110.00"]


def test_lines_covering_every_unit_left_cancel_the_whole_order(
    shop, place, simulator, django_capture_on_commit_callbacks
):
    order = place(items=[("PARA-500", 2), ("CETI-10", 1)])
    first = {"lines": [{"sku": "CETI-10", "quantity": 1}]}
    done = cancel(shop[1], order.pk, first, capture=django_capture_on_commit_callbacks)
    assert done.status_code == 200, done.content
    rest = {"reason": "all of it", "lines": [{"sku": "PARA-500", "quantity": 2}]}

    response = cancel(shop[1], order.pk, rest, capture=django_capture_on_commit_callbacks)

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["failure_reason"]) == (
        "cancelled",
        "cancelled_by_client",
    )
    assert read(shop[1], order)["payment"]["status"] == "refunded"
    assert read(shop[1], order)["payment"]["refunded_amount"] == "82.00"
    assert Shipment.objects.get(order_id=order.pk).status == ShipmentStatus.CANCELLED
    ledger = simulator.ledger()
    assert sorted(r["amount"] for r in mine(ledger["refunds"], order)) == ["22.00", "60.00"]
    timeline = Order.objects.get(pk=order.pk).events
    assert timeline.get(type="order.cancelled").data["note"] == "all of it"
    assert timeline.filter(type="order.lines_cancelled").count() == 1


def test_refused_cancels_answer_their_code_and_write_nothing(
    shop, place, simulator, django_capture_on_commit_callbacks
):
    order = place(items=[("PARA-500", 2), ("CETI-10", 3)])
    before = snapshot(order)

    def refused(lines, status, code, attr=None):
        response = cancel(
            shop[1], order.pk, {"lines": lines}, capture=django_capture_on_commit_callbacks
        )
        assert response.status_code == status, response.content
        [error] = response.json()["errors"]
        assert error["code"] == code, error
        if attr is not None:
            assert error["attr"] == attr
        assert snapshot(order) == before

    refused([{"sku": "NOPE", "quantity": 1}], 400, "unknown_sku", "lines.0.sku")
    refused([{"sku": "CETI-10", "quantity": 0}], 400, "min_value", "lines.0.quantity")
    refused(
        [{"sku": "CETI-10", "quantity": 1}, {"sku": "CETI-10", "quantity": 1}],
        400,
        "duplicate",
        "lines.1.sku",
    )
    refused([], 400, "min_length", "lines")
    refused([{"sku": "CETI-10", "quantity": 4}], 409, "quantity_exceeded")
    # More than is left of one line, even though another is fine.
    refused(
        [{"sku": "PARA-500", "quantity": 1}, {"sku": "CETI-10", "quantity": 9}],
        409,
        "quantity_exceeded",
    )
    # The courier picked the parcel up before its news reached the order.
    Shipment.objects.filter(order_id=order.pk).update(status=ShipmentStatus.PICKED_UP)
    before = snapshot(order)
    refused([{"sku": "CETI-10", "quantity": 1}], 409, "already_shipped")
    for status in (OrderStatus.SHIPPED, OrderStatus.ON_HOLD, OrderStatus.CANCELLED):
        Order.objects.filter(pk=order.pk).update(status=status)
        before = snapshot(order)
        refused([{"sku": "CETI-10", "quantity": 1}], 409, "invalid_transition")
    ledger = simulator.ledger()
    assert ledger["amendments"] == ledger["cancellations"] == mine(ledger["refunds"], order) == []


def test_an_order_still_in_the_pipeline_cannot_lose_lines(shop, place):
    order = place(run=False)
    response = cancel(shop[1], order.pk, {"lines": [{"sku": "PARA-500", "quantity": 1}]})
    assert response.status_code == 409
    assert response.json()["errors"][0] == {
        "code": "invalid_transition",
        "detail": "Units of an order that is received cannot be cancelled.",
        "attr": None,
    }
    assert OrderLine.objects.get(order=order).quantity == 2


@pytest.mark.django_db(transaction=True)
def test_of_concurrent_cancels_for_the_last_units_of_a_line_one_wins(shop, place, simulator):
    order = place(items=[("PARA-500", 2), ("CETI-10", 3)])
    batch = ReservationItem.objects.get(
        reservation__order_id=order.pk, batch__product__sku="CETI-10"
    ).batch
    before = batch.on_hand

    def attempt(i: int) -> str:
        try:
            order_lines_cancel(
                order=order, lines=[LineCancel("CETI-10", 3)], by="client", actor=f"client:{i}"
            )
        except QuantityExceeded:
            return "exceeded"
        return "cancelled"

    outcomes = race(8, attempt)

    assert sorted(outcomes) == ["cancelled"] + ["exceeded"] * 7
    batch.refresh_from_db()
    assert batch.on_hand == before + 3
    line = OrderLine.objects.get(order=order, sku="CETI-10")
    assert (line.quantity, line.cancelled_quantity) == (0, 3)
    assert Order.objects.get(pk=order.pk).total_amount == Decimal("60.00")
    ledger = simulator.ledger()
    assert [r["amount"] for r in mine(ledger["refunds"], order)] == ["66.00"]
    assert len(ledger["amendments"]) == 1
