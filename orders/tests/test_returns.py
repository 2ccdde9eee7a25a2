"""Customer returns through the services, the API (DRF's test client) and the admin, on the
real database and the real simulator (inline pipeline): every refusal writes nothing, the
window and the unit counts hold under concurrency, approval books one reverse pickup,
receiving puts units back into the batches they left (or writes them off), and the refund
is made exactly once."""

from __future__ import annotations

import datetime
import json
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from core.tests.factories import ApiClientFactory, api_key_for
from inventory.models import FulfillmentCenter, StockBatch, StockReturn
from inventory.tests.factories import ProductFactory, StockBatchFactory
from logistics.models import Shipment
from logistics.services import shipment_tracking_apply
from logistics.services.returns import PickupRefused
from orders.models import Order, OrderEvent, Return
from orders.services.returns import (
    InvalidReturnTransition,
    LineInspection,
    QuantityExceeded,
    ReturnLineRequest,
    return_approve,
    return_receive,
    return_reject,
    return_request,
)
from orders.tests.factories import place_order
from orders.tests.test_admin import login
from payments.models import Payment
from prescriptions.models import H1RegisterEntry, PrescriptionItem
from prescriptions.tests.factories import prescription_with

pytestmark = pytest.mark.django_db
VPA = "a.rao@okbank"


@pytest.fixture
def catalog(shop):
    """Products of these tests' own in BLR-1: an OTC product in two batches (2 units
    expiring first, then 10), and a cold-chain one."""
    today = datetime.date.today()
    blr = FulfillmentCenter.objects.get(code="BLR-1")
    otc = ProductFactory(sku="RET-OTC", price=Decimal("40.00"))
    StockBatchFactory(
        product=otc,
        center=blr,
        batch="RET-A",
        expires_on=today + datetime.timedelta(200),
        on_hand=2,
    )
    StockBatchFactory(
        product=otc,
        center=blr,
        batch="RET-B",
        expires_on=today + datetime.timedelta(400),
        on_hand=10,
    )
    cold = ProductFactory(sku="RET-COLD", price=Decimal("150.00"), cold_chain=True)
    StockBatchFactory(product=cold, center=blr, batch="RET-C", on_hand=10)
    return shop


def on_hand(batch):
    return StockBatch.objects.get(batch=batch).on_hand


def deliver(order, *, days_ago=0):
    at = timezone.now() - datetime.timedelta(days=days_ago)
    for shipment in Shipment.objects.filter(order_id=order.pk):
        shipment_tracking_apply(awb=shipment.awb, status="delivered", at=at, otp_verified=True)
    # The courier's time of delivery, as the window reads it.
    Shipment.objects.filter(order_id=order.pk).update(status_at=at)
    order.refresh_from_db()
    return order


@pytest.fixture
def delivered(place, catalog, django_capture_on_commit_callbacks):
    def make(items=(("RET-OTC", 4), ("RET-COLD", 1)), **kwargs):
        order = place(items=items, **kwargs)
        assert order.status == "confirmed", list(order.events.values_list("type", flat=True))
        with django_capture_on_commit_callbacks(execute=True):
            return deliver(order)

    return make


def api(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def url(order):
    return f"/api/v1/orders/{order.pk}/returns/"


def post(client, order, body, **headers):
    return client.post(
        url(order), data=json.dumps(body), content_type="application/json", **headers
    )


def body(lines=(("RET-OTC", 1),), reason="not_needed", **extra):
    return {
        "reason": reason,
        "note": "ordered too many",
        "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
        **extra,
    }


def written(order):
    """What a refused request must leave as it was."""
    return (
        Return.objects.filter(order=order).count(),
        OrderEvent.objects.filter(order=order).count(),
    )


def request(order, lines, reason="damaged", **kwargs):
    return return_request(
        order=order,
        reason=reason,
        lines=[ReturnLineRequest(sku=sku, quantity=quantity) for sku, quantity in lines],
        by="client:test",
        **kwargs,
    ).ret


def events(order, prefix=""):
    return [
        (e.type, e.data)
        for e in OrderEvent.objects.filter(order=order).order_by("pk")
        if e.type.startswith(prefix)
    ]


# --- the API ------------------------------------------------------------------------------


def test_a_return_is_requested_and_listed_oldest_first(
    delivered, catalog, django_capture_on_commit_callbacks
):
    order = delivered()
    client = api(catalog[1])
    counted = REGISTRY.get_sample_value("cot_returns_total", {"reason": "not_needed"}) or 0.0
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, order, body(lines=[("RET-OTC", 3)]))
    assert response.status_code == 201, response.content
    assert REGISTRY.get_sample_value("cot_returns_total", {"reason": "not_needed"}) == counted + 1
    ret = response.json()
    assert ret["status"] == "requested"
    assert (ret["reason"], ret["note"], ret["pickup"]) == ("not_needed", "ordered too many", None)
    assert ret["lines"] == [
        {
            "sku": "RET-OTC",
            "quantity": 3,
            "unit_price": "40.00",
            "amount": "120.00",
            "outcome": None,
            "write_off_reason": None,
        }
    ]
    assert ret["refund_amount"] == "120.00"
    assert ret["created_at"].endswith("Z") and ret["updated_at"].endswith("Z")
    second = post(client, order, body(lines=[("RET-OTC", 1)], reason="damaged")).json()

    listed = client.get(url(order))
    assert listed.status_code == 200
    assert [r["id"] for r in listed.json()["results"]] == [ret["id"], second["id"]]
    [(kind, data), _] = events(order, "return.")
    assert kind == "return.requested"
    assert data["return"] == ret["id"] and data["refund_amount"] == "120.00"
    assert data["lines"] == [{"sku": "RET-OTC", "quantity": 3, "amount": "120.00"}]
    assert data["by"] == "client:web-shop"
    # Units in shipment item order: the 2 of the earlier batch first, then 1 more.
    line = Return.objects.get(pk=ret["id"]).lines.get()
    assert [(b["batch"], b["quantity"]) for b in line.batches] == [("RET-A", 2), ("RET-B", 1)]


def test_another_clients_order_is_404(delivered):
    order = delivered()
    stranger = api(api_key_for(ApiClientFactory(name="other")))
    assert post(stranger, order, body()).status_code == 404
    assert stranger.get(url(order)).status_code == 404
    assert not Return.objects.exists()


def test_the_idempotency_key_replays_the_return_and_refuses_another_body(delivered, catalog):
    order = delivered()
    client = api(catalog[1])
    first = post(client, order, body(), HTTP_IDEMPOTENCY_KEY="ret-1")
    again = post(client, order, body(), HTTP_IDEMPOTENCY_KEY="ret-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = post(client, order, body(lines=[("RET-OTC", 2)]), HTTP_IDEMPOTENCY_KEY="ret-1")
    assert other.status_code == 409
    assert other.json()["errors"][0]["code"] == "idempotency_key_reused"
    assert Return.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "attr", "code"),
    [
        (body(lines=[("PARA-500", 1)]), "lines.0.sku", "unknown_sku"),
        (body(lines=[("RET-OTC", 0)]), "lines.0.quantity", "min_value"),
        (body(lines=[("RET-OTC", 1), ("RET-OTC", 1)]), "lines.1.sku", "duplicate"),
        (body(lines=[]), "lines", "min_length"),
        (body(reason="changed_mind"), "reason", "invalid_choice"),
        (body(colour="red"), "colour", "unknown_field"),
        (body(refund_vpa="not-a-upi-id"), "refund_vpa", "invalid"),
        ({"lines": [{"sku": "RET-OTC", "quantity": 1}]}, "reason", "required"),
    ],
)
def test_a_bad_body_is_400_and_writes_nothing(delivered, catalog, payload, attr, code):
    order = delivered()
    before = written(order)
    response = post(api(catalog[1]), order, payload)
    assert response.status_code == 400, response.content
    assert response.json()["type"] == "validation_error"
    assert {"attr": attr, "code": code} in [
        {"attr": e["attr"], "code": e["code"]} for e in response.json()["errors"]
    ], response.json()
    assert written(order) == before


def test_cash_on_delivery_needs_a_upi_id(delivered, catalog):
    order = delivered(payment_method="cod", payment_token="")
    before = written(order)
    response = post(api(catalog[1]), order, body())
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "refund_vpa"
    assert written(order) == before
    assert post(api(catalog[1]), order, body(refund_vpa=VPA)).status_code == 201


def conflict(client, order, payload, code):
    before = written(order)
    response = post(client, order, payload)
    assert response.status_code == 409, response.content
    assert response.json()["type"] == "client_error"
    assert response.json()["errors"][0]["code"] == code
    assert written(order) == before


def test_nothing_delivered_is_409_not_delivered(place, catalog):
    order = place(items=[("RET-OTC", 1)])
    assert order.status == "confirmed"
    conflict(api(catalog[1]), order, body(), "not_delivered")


def test_units_not_in_a_delivered_shipment_are_not_delivered(delivered, catalog):
    order = delivered(items=[("RET-OTC", 1)])
    # The same order's shipment came back to the centre instead (RTO): nothing delivered.
    Shipment.objects.filter(order_id=order.pk).update(status="returned")
    conflict(api(catalog[1]), order, body(), "not_delivered")


def test_the_return_window_closes_after_cot_return_window_days(delivered, catalog, settings):
    settings.COT_RETURN_WINDOW_DAYS = 7
    order = delivered()
    client = api(catalog[1])
    at = timezone.now() - datetime.timedelta(days=7, minutes=1)
    Shipment.objects.filter(order_id=order.pk).update(status_at=at)
    conflict(client, order, body(), "return_window_closed")
    Shipment.objects.filter(order_id=order.pk).update(status_at=at + datetime.timedelta(minutes=2))
    assert post(client, order, body()).status_code == 201


@pytest.mark.parametrize("reason", ["not_needed", "other"])
def test_cold_chain_units_come_back_only_when_something_was_wrong(delivered, catalog, reason):
    order = delivered()
    client = api(catalog[1])
    conflict(client, order, body(lines=[("RET-COLD", 1)], reason=reason), "not_returnable")
    for fault in ("damaged", "wrong_item", "expired"):
        Return.objects.filter(order=order).update(status="rejected")
        response = post(client, order, body(lines=[("RET-COLD", 1)], reason=fault))
        assert response.status_code == 201, (fault, response.content)


def test_units_returned_or_asked_for_do_not_count_twice(delivered, catalog):
    order = delivered()
    client = api(catalog[1])
    conflict(client, order, body(lines=[("RET-OTC", 5)]), "quantity_exceeded")
    assert post(client, order, body(lines=[("RET-OTC", 3)])).status_code == 201
    conflict(client, order, body(lines=[("RET-OTC", 2)]), "quantity_exceeded")
    second = post(client, order, body(lines=[("RET-OTC", 1)])).json()
    conflict(client, order, body(lines=[("RET-OTC", 1)]), "quantity_exceeded")
    # A rejected return gives its units back to be asked for again.
    return_reject(return_id=second["id"], by="ops:test", note="no photo")
    assert post(client, order, body(lines=[("RET-OTC", 1)])).status_code == 201


# --- concurrency --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_requests_for_the_last_unit_make_exactly_one_return(
    demo_catalog, simulator, settings, django_capture_on_commit_callbacks
):
    settings.COT_PIPELINE_MODE = "inline"
    with django_capture_on_commit_callbacks(execute=True):
        order = place_order(ApiClientFactory(), items=[("PARA-500", 1)])
    order.refresh_from_db()
    assert order.status == "confirmed"
    deliver(order)
    barrier = threading.Barrier(10)
    outcomes: list[str] = []

    def ask() -> None:
        try:
            barrier.wait()
            request(order, [("PARA-500", 1)])
            outcomes.append("returned")
        except QuantityExceeded:
            outcomes.append("quantity_exceeded")
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["quantity_exceeded"] * 9 + ["returned"]
    assert Return.objects.filter(order=order).count() == 1
    assert len(events(order, "return.requested")) == 1


# --- approve and reject -------------------------------------------------------------------


def returns_booked(simulator, ret):
    return [
        e
        for e in simulator.ledger()["returns"]
        if e["idempotency_key"] == f"return:{ret.pk}:pickup"
    ]


def test_approval_books_one_reverse_pickup_with_the_partner_that_delivered(delivered, simulator):
    order = delivered()
    ret = request(order, [("RET-OTC", 3)])
    ops = login("ops")
    page = ops.post(
        "/admin/orders/return/",
        {"action": "approve_returns", "_selected_action": [str(ret.pk)]},
        follow=True,
    )
    assert b"Approved: 1" in page.content
    ret.refresh_from_db()
    [booking] = returns_booked(simulator, ret)
    shipment = Shipment.objects.get(order_id=order.pk)
    assert ret.status == "approved"
    assert (ret.pickup_partner, ret.pickup_awb) == (shipment.partner, booking["awb"])
    assert booking["target"] == f"logistics/{shipment.partner}"
    assert booking["items"] == [{"sku": "RET-OTC", "quantity": 3}]
    assert booking["pincode"] == order.delivery_address["pincode"]
    # A second click (or a second ops user) changes nothing and books nothing.
    again = ops.post(
        "/admin/orders/return/",
        {"action": "approve_returns", "_selected_action": [str(ret.pk)]},
        follow=True,
    )
    assert b"Not approved" in again.content
    with pytest.raises(InvalidReturnTransition):
        return_approve(return_id=ret.pk, by="ops:other")
    assert len(returns_booked(simulator, ret)) == 1
    [(_, data)] = events(order, "return.approved")
    assert (data["partner"], data["awb"], data["by"]) == (
        shipment.partner,
        ret.pickup_awb,
        "ops:u-ops",
    )
    response = api(api_key_for(order.client)).get(url(order)).json()["results"][0]
    assert response["pickup"] == {"partner": shipment.partner, "awb": ret.pickup_awb}


def test_a_pickup_the_partner_refuses_leaves_the_return_requested(delivered, simulator):
    order = delivered()
    ret = request(order, [("RET-OTC", 1)])
    partner = Shipment.objects.get(order_id=order.pk).partner
    simulator.control(f"logistics/{partner}", unserviceable_prefixes=["560"])
    with pytest.raises(PickupRefused):
        return_approve(return_id=ret.pk, by="ops:test")
    ret.refresh_from_db()
    assert (ret.status, ret.pickup_awb) == ("requested", "")
    assert not events(order, "return.approved")


def test_ops_reject_with_a_note(delivered, simulator):
    order = delivered()
    ret = request(order, [("RET-OTC", 1)])
    ops = login("ops")
    selected = {"action": "reject_returns", "_selected_action": [str(ret.pk)]}
    form = ops.post("/admin/orders/return/", selected)
    assert form.status_code == 200 and b"Reject returns?" in form.content
    # No note, no rejection.
    ops.post("/admin/orders/return/", {**selected, "confirm": "yes", "note": ""})
    assert Return.objects.get(pk=ret.pk).status == "requested"
    done = ops.post(
        "/admin/orders/return/",
        {**selected, "confirm": "yes", "note": "opened and used"},
        follow=True,
    )
    assert b"Rejected: 1" in done.content
    ret.refresh_from_db()
    assert (ret.status, ret.decision_note) == ("rejected", "opened and used")
    [(_, data)] = events(order, "return.rejected")
    assert (data["by"], data["note"]) == ("ops:u-ops", "opened and used")
    with pytest.raises(InvalidReturnTransition):
        return_approve(return_id=ret.pk, by="ops:test")
    assert simulator.ledger()["returns"] == []


# --- receive and refund -------------------------------------------------------------------


def refunds(simulator, order, section="refunds"):
    return [e for e in simulator.ledger()[section] if str(order.pk) in e["idempotency_key"]]


def test_receive_restocks_into_the_batches_the_units_left_and_refunds_once(
    delivered, simulator, django_capture_on_commit_callbacks
):
    order = delivered()
    ret = request(order, [("RET-OTC", 3), ("RET-COLD", 1)])
    return_approve(return_id=ret.pk, by="ops:test")
    before = {batch: on_hand(batch) for batch in ("RET-A", "RET-B", "RET-C")}
    ops = login("ops")
    selected = {"action": "receive_returns", "_selected_action": [str(ret.pk)]}
    assert b"RET-OTC" in ops.post("/admin/orders/return/", selected).content
    otc, cold = ret.lines.order_by("pk")
    with django_capture_on_commit_callbacks(execute=True):
        page = ops.post(
            "/admin/orders/return/",
            {
                **selected,
                "confirm": "yes",
                f"line-{otc.pk}-verdict": "restock",
                f"line-{cold.pk}-verdict": "write_off",
                f"line-{cold.pk}-write_off_reason": "damaged",
                "note": "box crushed",
            },
            follow=True,
        )
    assert b"Received: 1" in page.content
    # Back into the batches they left: 2 of RET-A, 1 of RET-B; the damaged unit written off.
    assert on_hand("RET-A") == before["RET-A"] + 2
    assert on_hand("RET-B") == before["RET-B"] + 1
    assert on_hand("RET-C") == before["RET-C"]
    takes = StockReturn.objects.filter(reference=f"return:{ret.pk}")
    assert sorted(takes.values_list("batch__batch", "quantity", "outcome", "reason")) == [
        ("RET-A", 2, "restocked", ""),
        ("RET-B", 1, "restocked", ""),
        ("RET-C", 1, "written_off", "damaged"),
    ]
    # The refund went through the gateway once, for exactly the return's amount.
    ret.refresh_from_db()
    assert ret.status == "refunded"
    assert ret.refund_amount == Decimal("270.00")
    [refund] = refunds(simulator, order)
    assert Decimal(refund["amount"]) == ret.refund_amount
    assert Payment.objects.get(order_id=order.pk).refunded_amount == ret.refund_amount
    kinds = [kind for kind, _ in events(order) if not kind.startswith("notification.")]
    tail = kinds[kinds.index("return.received") - 3 :]
    assert tail[:4] == [
        "inventory.restocked",
        "inventory.restocked",
        "inventory.written_off",
        "return.received",
    ]
    assert kinds[-1] == "return.refunded" and "payment.refunded" in kinds
    [(_, written_off)] = events(order, "inventory.written_off")
    assert {k: written_off[k] for k in ("sku", "batch", "quantity", "reason")} == {
        "sku": "RET-COLD",
        "batch": "RET-C",
        "quantity": 1,
        "reason": "damaged",
    }
    [(_, refunded)] = events(order, "return.refunded")
    assert (refunded["return"], refunded["amount"]) == (str(ret.pk), "270.00")
    lines = api(api_key_for(order.client)).get(url(order)).json()["results"][0]["lines"]
    assert [(x["outcome"], x["write_off_reason"]) for x in lines] == [
        ("restocked", None),
        ("written_off", "damaged"),
    ]
    # Receiving again (a second click) takes nothing back and refunds nothing more.
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(InvalidReturnTransition):
        return_receive(
            return_id=ret.pk,
            by="ops:other",
            inspections=[LineInspection("RET-OTC"), LineInspection("RET-COLD")],
        )
    assert on_hand("RET-A") == before["RET-A"] + 2
    assert len(refunds(simulator, order)) == 1
    assert len(events(order, "return.received")) == 1


def test_a_cold_chain_unit_sent_to_restock_is_written_off_by_the_stock_rules(
    delivered, django_capture_on_commit_callbacks
):
    order = delivered()
    ret = request(order, [("RET-COLD", 1)], reason="wrong_item")
    return_approve(return_id=ret.pk, by="ops:test")
    before = on_hand("RET-C")
    with django_capture_on_commit_callbacks(execute=True):
        return_receive(return_id=ret.pk, by="ops:test", inspections=[LineInspection("RET-COLD")])
    line = ret.lines.get()
    assert (line.outcome, line.write_off_reason) == ("written_off", "cold_chain")
    assert on_hand("RET-C") == before


def test_cash_on_delivery_is_paid_back_to_the_upi_id_once(
    delivered, simulator, django_capture_on_commit_callbacks
):
    order = delivered(payment_method="cod", payment_token="")
    assert Payment.objects.get(order_id=order.pk).status == "captured"  # collected
    ret = request(order, [("RET-OTC", 2)], refund_vpa=VPA)
    return_approve(return_id=ret.pk, by="ops:test")
    with django_capture_on_commit_callbacks(execute=True):
        return_receive(return_id=ret.pk, by="ops:test", inspections=[LineInspection("RET-OTC")])
    [payout] = refunds(simulator, order, "payouts")
    assert (payout["vpa"], Decimal(payout["amount"])) == (VPA, Decimal("80.00"))
    assert refunds(simulator, order) == []
    ret.refresh_from_db()
    assert ret.status == "refunded"


def test_a_damaged_prescription_drug_gives_back_its_prescription_quantity(
    delivered, django_capture_on_commit_callbacks, catalog
):
    prescription = prescription_with([("CEFI-200", 4)], client=catalog[0])
    order = delivered(items=[("CEFI-200", 2)], prescription_id=prescription.pk)
    client = api(catalog[1])
    conflict(client, order, body(lines=[("CEFI-200", 1)], reason="not_needed"), "not_returnable")
    ret = request(order, [("CEFI-200", 1)], reason="damaged")
    return_approve(return_id=ret.pk, by="ops:test")
    with django_capture_on_commit_callbacks(execute=True):
        return_receive(
            return_id=ret.pk,
            by="ops:test",
            inspections=[LineInspection("CEFI-200", write_off_reason="damaged")],
        )
    item = PrescriptionItem.objects.get(prescription=prescription, sku="CEFI-200")
    assert item.dispensed_quantity == 1
    [returned] = H1RegisterEntry.objects.filter(order_id=order.pk, entry_type="returned")
    assert (returned.sku, returned.quantity, returned.reference) == (
        "CEFI-200",
        1,
        f"return:{ret.pk}",
    )
    assert Order.objects.get(pk=order.pk).returns.get().status == "refunded"


# --- who sees it --------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "code"), [("ops", 200), ("pharmacist", 403), (None, 200)])
def test_the_returns_desk_is_for_ops(delivered, role, code):
    order = delivered()
    ret = request(order, [("RET-OTC", 1)])
    client = login(role)
    assert client.get("/admin/orders/return/?status__exact=requested").status_code == code
    assert client.get(f"/admin/orders/return/?q={order.number}").status_code == code
    change = client.get(f"/admin/orders/return/{ret.pk}/change/")
    assert change.status_code == code
    if code == 200:
        assert b"RET-OTC" in change.content
