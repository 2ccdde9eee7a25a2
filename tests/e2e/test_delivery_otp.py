"""Proof of delivery end to end: an order with a schedule H1 drug, on an approved
prescription, is booked with `otp_required`; the customer gets the OTP when the parcel is
out for delivery; the courier's `delivered` is refused (409) until it says it checked the
OTP. Live API, real worker, the simulator's couriers off: the tracking webhooks are posted
by hand, signed as a partner signs them."""

from __future__ import annotations

import copy
import datetime
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from core.webhooks import SIGNATURE_HEADER, webhook_signature
from orders.tests.factories import ORDER_BODY
from tests.e2e.test_prescription_flow import pharmacist  # noqa: F401 (a fixture)

pytestmark = pytest.mark.e2e
H1_SKU = "CEFI-200"


def track(stack, awb: str, status: str, **extra: Any) -> httpx.Response:
    from django.conf import settings

    body = {"awb": awb, "status": status, "at": "2026-01-05T10:00:00Z", **extra}
    raw = json.dumps(body).encode()
    signature = webhook_signature(settings.LOGISTICS_WEBHOOK_SECRET, raw)
    with stack.client(None) as partner:
        return partner.post(
            "/api/v1/webhooks/logistics/",
            content=raw,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
        )


def approved_prescription(client: httpx.Client, reviewer: httpx.Client, customer: str) -> str:
    issued = datetime.date.today() - datetime.timedelta(days=3)
    response = client.post(
        "/api/v1/prescriptions/",
        json={
            "customer_id": customer,
            "patient_name": "A. Rao",
            "doctor_name": "Dr. B. Iyer",
            "doctor_registration_no": "KMC-12345",
            "issued_on": issued.isoformat(),
            "items": [{"sku": H1_SKU, "quantity": 4}],
        },
    )
    assert response.status_code == 201, response.text
    rx = response.json()["id"]
    review = reviewer.post(f"/api/v1/prescriptions/{rx}/review/", json={"decision": "approved"})
    assert review.status_code == 200, review.text
    return rx


def place(client: httpx.Client, **overrides: Any) -> str:
    body = copy.deepcopy(ORDER_BODY)
    body.update({"customer_id": f"C-{uuid.uuid4().hex[:8]}", **overrides})
    response = client.post("/api/v1/orders/", json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def out_for_delivery_texts(stack, order_id: str, timeout: float = 15) -> list[str]:
    """The customer's out-for-delivery messages (sent by a task of their own)."""
    key = f"order:{order_id}:notify:shipment.out_for_delivery:"
    deadline = time.monotonic() + timeout
    while True:
        messages = stack.simulator.ledger()["messages"]
        texts = [m["text"] for m in messages if m["idempotency_key"].startswith(key)]
        if texts or time.monotonic() > deadline:
            return texts
        time.sleep(0.2)


def test_an_h1_parcel_is_delivered_only_against_the_customer_s_otp(stack, pharmacist):  # noqa: F811
    with stack.client() as client:
        customer = f"C-{uuid.uuid4().hex[:8]}"
        rx = approved_prescription(client, pharmacist, customer)
        order_id = place(
            client,
            customer_id=customer,
            prescription_id=rx,
            items=[{"sku": H1_SKU, "quantity": 2}],
        )
        order = stack.wait_for(client, order_id)
        assert order["status"] == "confirmed", order
        [shipment] = order["shipments"]
        otp, awb = shipment["delivery_otp"], shipment["awb"]
        assert otp is not None and len(otp) == 6 and otp.isdigit()
        # The partner was asked for proof of delivery, and never told the OTP.
        [booking] = [s for s in stack.simulator.ledger()["shipments"] if s["awb"] == awb]
        assert booking["otp_required"] is True and otp not in json.dumps(booking)

        for status in ("picked_up", "out_for_delivery"):
            assert track(stack, awb, status).json() == {"result": "applied"}
        texts = out_for_delivery_texts(stack, order_id)
        assert texts and all(otp in text for text in texts), texts

        refused = track(stack, awb, "delivered")
        assert refused.status_code == 409, refused.text
        assert refused.json()["errors"][0]["code"] == "otp_required"
        order = client.get(f"/api/v1/orders/{order_id}/").json()
        assert order["status"] == "shipped"
        assert order["shipments"][0]["status"] == "out_for_delivery"
        assert [e["status"] for e in order["shipments"][0]["events"]] == [
            "picked_up",
            "out_for_delivery",
        ]
        assert "shipment.delivered" not in {e["type"] for e in order["events"]}

        delivered = track(stack, awb, "delivered", otp_verified=True)
        assert delivered.json() == {"result": "applied"}
        order = client.get(f"/api/v1/orders/{order_id}/").json()
        assert (order["status"], order["shipments"][0]["status"]) == ("delivered", "delivered")
        # A replay without the flag is still a replay.
        assert track(stack, awb, "delivered").json() == {"result": "already_applied"}
        # The timeline never carries the OTP: only the order's own shipments show it.
        assert otp not in json.dumps(order["events"])


def test_an_over_the_counter_parcel_needs_no_otp(stack):
    with stack.client() as client:
        order_id = place(client)
        order = stack.wait_for(client, order_id)
        [shipment] = order["shipments"]
        assert shipment["delivery_otp"] is None
        awb = shipment["awb"]
        [booking] = [s for s in stack.simulator.ledger()["shipments"] if s["awb"] == awb]
        assert booking["otp_required"] is False
        assert track(stack, awb, "delivered").json() == {"result": "applied"}
        order = stack.wait_for(client, order_id, until=lambda o: o["status"] == "delivered")
