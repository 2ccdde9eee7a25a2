"""Cancellation by the client (API) and by ops (admin action): until the order ships, with
stock, money, bookings and prescription quantities given back (inline pipeline, real
simulator and database)."""

import json
import uuid

import pytest
from rest_framework.test import APIClient

from core.tests.factories import ApiClientFactory, api_key_for
from inventory.enums import ReservationStatus
from inventory.models import Reservation, StockBatch
from logistics.models import Shipment
from orders.enums import OrderStatus
from orders.models import Order
from orders.pipeline import run_inline
from orders.tests.test_admin import login
from payments.models import Payment
from prescriptions.models import PrescriptionItem
from prescriptions.tests.factories import prescription_with

pytestmark = pytest.mark.django_db


def cancel(key, order_id, body=None, *, capture=None):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    raw = json.dumps({"reason": "changed my mind"} if body is None else body)
    url = f"/api/v1/orders/{order_id}/cancel/"
    if capture is None:
        return client.post(url, raw, content_type="application/json")
    with capture(execute=True):
        return client.post(url, raw, content_type="application/json")


def on_hand(batch="B24-001"):
    return StockBatch.objects.get(batch=batch).on_hand


def events(order):
    return list(Order.objects.get(pk=order.pk).events.values_list("type", flat=True))


def test_a_confirmed_order_is_cancelled_refunded_unbooked_and_restocked(
    shop, place, simulator, django_capture_on_commit_callbacks
):
    before = on_hand()
    order = place()
    assert order.status == OrderStatus.CONFIRMED and on_hand() == before - 2

    response = cancel(shop[1], order.pk, capture=django_capture_on_commit_callbacks)

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["failure_reason"]) == (
        "cancelled",
        "cancelled_by_client",
    )
    order.refresh_from_db()
    assert (order.status, order.failure_reason) == ("cancelled", "cancelled_by_client")
    assert on_hand() == before
    assert Reservation.objects.get(order_id=order.pk).status == ReservationStatus.RELEASED
    assert Payment.objects.get(order_id=order.pk).status == "refunded"
    assert Shipment.objects.get(order_id=order.pk).status == "cancelled"
    ledger = simulator.ledger()
    assert [r["idempotency_key"] for r in ledger["refunds"]] == [f"order:{order.pk}:refund:1"]
    assert [c["awb"] for c in ledger["cancellations"]] == [
        Shipment.objects.get(order_id=order.pk).awb
    ]
    timeline = Order.objects.get(pk=order.pk).events
    assert timeline.get(type="order.cancelled").data == {
        "by": "client:web-shop",
        "note": "changed my mind",
        "reason": "cancelled_by_client",
    }
    assert timeline.get(type="inventory.released").data["restocked"] is True
    assert "payment.refunded" in events(order)

    # Ended: a second cancel is a conflict and changes nothing.
    again = cancel(shop[1], order.pk, capture=django_capture_on_commit_callbacks)
    assert again.status_code == 409
    assert again.json()["errors"][0]["code"] == "invalid_transition"
    assert on_hand() == before
    assert len(simulator.ledger()["refunds"]) == 1


def test_an_order_not_yet_processed_is_cancelled_and_the_pipeline_then_does_nothing(
    shop, place, simulator, django_capture_on_commit_callbacks
):

    order = place(run=False)
    assert order.status == OrderStatus.RECEIVED
    response = cancel(shop[1], order.pk, {}, capture=django_capture_on_commit_callbacks)
    assert response.status_code == 200
    run_inline(order.pk)  # a late pipeline run finds the order ended
    order.refresh_from_db()
    assert (order.status, order.failure_reason) == ("cancelled", "cancelled_by_client")
    assert simulator.ledger()["charges"] == simulator.ledger()["shipments"] == []


def test_cash_on_delivery_is_voided_and_rx_quantities_returned(
    shop, place, django_capture_on_commit_callbacks
):
    prescription = prescription_with([("AMOX-500", 10)], client=shop[0])
    order = place(
        items=[("AMOX-500", 4)],
        prescription_id=prescription.pk,
        payment_method="cod",
        payment_token="",
    )
    assert order.status == OrderStatus.CONFIRMED
    assert PrescriptionItem.objects.get().dispensed_quantity == 4
    assert cancel(shop[1], order.pk, capture=django_capture_on_commit_callbacks).status_code == 200
    assert PrescriptionItem.objects.get().dispensed_quantity == 0
    assert Payment.objects.get(order_id=order.pk).status == "voided"


def test_a_shipped_order_cannot_be_cancelled(shop, place, simulator):
    order = place()
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.SHIPPED)
    before = on_hand()
    response = cancel(shop[1], order.pk)
    assert response.status_code == 409
    assert response.json() == {
        "type": "client_error",
        "errors": [
            {
                "code": "invalid_transition",
                "detail": "An order that is shipped cannot be cancelled.",
                "attr": None,
            }
        ],
    }
    assert Order.objects.get(pk=order.pk).status == OrderStatus.SHIPPED
    assert on_hand() == before
    assert simulator.ledger()["refunds"] == simulator.ledger()["cancellations"] == []


def test_only_the_owner_may_cancel_and_bad_bodies_change_nothing(shop, place):
    order = place(run=False)
    other = api_key_for(ApiClientFactory(name="other-shop"))
    assert cancel(other, order.pk).status_code == 404
    assert cancel(shop[1], uuid.uuid4()).status_code == 404
    assert APIClient().post(f"/api/v1/orders/{order.pk}/cancel/").status_code == 401
    for body, attr in (({"why": "x"}, "why"), ({"reason": "x" * 501}, "reason"), ([], None)):
        response = cancel(shop[1], order.pk, body)
        assert response.status_code == 400, body
        assert response.json()["errors"][0]["attr"] in (attr, "non_field_errors")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.RECEIVED


def test_ops_cancel_from_admin_after_a_confirmation_page(
    place, simulator, django_capture_on_commit_callbacks
):
    confirmed, shipped = place(), place()
    Order.objects.filter(pk=shipped.pk).update(status=OrderStatus.SHIPPED)
    client = login("ops")
    form = {"action": "cancel_orders", "_selected_action": [str(confirmed.pk), str(shipped.pk)]}
    page = client.post("/admin/orders/order/", form)
    assert page.status_code == 200 and b"Yes, cancel" in page.content
    assert shipped.number.encode() in page.content.split(b"left alone")[1]
    assert Order.objects.get(pk=confirmed.pk).status == OrderStatus.CONFIRMED

    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            "/admin/orders/order/",
            {**form, "confirm": "yes", "note": "customer called"},
            follow=True,
        )
    assert b"Cancelled: 1" in done.content
    order = Order.objects.get(pk=confirmed.pk)
    assert (order.status, order.failure_reason) == ("cancelled", "cancelled_by_ops")
    assert order.events.get(type="order.cancelled").data["by"] == "ops:u-ops"
    assert order.events.get(type="order.cancelled").data["note"] == "customer called"
    assert Order.objects.get(pk=shipped.pk).status == OrderStatus.SHIPPED
    assert len(simulator.ledger()["refunds"]) == 1


def test_roles_without_change_permission_cannot_cancel(place):
    order = place()
    form = {"action": "cancel_orders", "_selected_action": [str(order.pk)], "confirm": "yes"}
    pharmacist = login("pharmacist")
    assert b"cancel_orders" not in pharmacist.get("/admin/orders/order/").content
    assert b"cancel_orders" in login("ops").get("/admin/orders/order/").content
    pharmacist.post("/admin/orders/order/", form)  # not an action this role has
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CONFIRMED
