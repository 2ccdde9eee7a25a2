"""Prescription rules end to end (live API, real worker): only the uploading client's
orders may use a prescription, H1 lines need a fresher one, and `max_dispenses` caps the
orders drawing on it until one of them is cancelled."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import httpx
import pytest

from orders.tests.factories import ORDER_BODY
from tests.e2e.test_prescription_flow import (
    pharmacist,  # noqa: F401 (a fixture)
    upload,
)

pytestmark = pytest.mark.e2e


def approved(
    client: httpx.Client,
    reviewer: httpx.Client,
    customer: str,
    *,
    items: list[tuple[str, int]],
    issued_days_ago: int = 3,
    **extra: Any,
) -> dict[str, Any]:
    rx = upload(client, customer, issued_days_ago=issued_days_ago, items=items, **extra)
    review = reviewer.post(f"/api/v1/prescriptions/{rx}/review/", json={"decision": "approved"})
    assert review.status_code == 200, review.text
    return client.get(f"/api/v1/prescriptions/{rx}/").json()


def ordered(
    stack, client: httpx.Client, customer: str, rx: str, items: list[tuple[str, int]]
) -> dict[str, Any]:
    body = copy.deepcopy(ORDER_BODY)
    body.update(
        customer_id=customer,
        prescription_id=rx,
        items=[{"sku": sku, "quantity": quantity} for sku, quantity in items],
    )
    response = client.post("/api/v1/orders/", json=body)
    assert response.status_code == 202, response.text
    return stack.wait_for(client, response.json()["id"])


def test_another_clients_prescription_is_invalid_for_the_same_customer(stack, pharmacist):  # noqa: F811
    customer = f"C-{uuid.uuid4().hex[:8]}"
    with stack.client("web") as web, stack.client("mobile") as mobile:
        rx = approved(web, pharmacist, customer, items=[("AMOX-500", 10)])["id"]
        done = ordered(stack, mobile, customer, rx, [("AMOX-500", 2)])
        # Nor can the other client see it: it does not exist for them.
        assert mobile.get(f"/api/v1/prescriptions/{rx}/").status_code == 404
        untouched = web.get(f"/api/v1/prescriptions/{rx}/").json()
    assert (done["status"], done["failure_reason"]) == ("rejected", "prescription_invalid")
    assert done["payment"]["status"] == "voided"
    assert untouched["items"][0]["dispensed_quantity"] == 0


def test_an_h1_line_needs_a_fresher_prescription_than_an_h_line(stack, pharmacist):  # noqa: F811
    customer = f"C-{uuid.uuid4().hex[:8]}"
    with stack.client() as client:
        rx = approved(
            client,
            pharmacist,
            customer,
            items=[("AMOX-500", 10), ("CEFI-200", 4)],
            issued_days_ago=60,
        )["id"]
        h1 = ordered(stack, client, customer, rx, [("CEFI-200", 1)])
        h = ordered(stack, client, customer, rx, [("AMOX-500", 1)])
    assert (h1["status"], h1["failure_reason"]) == ("rejected", "prescription_expired")
    assert h["status"] == "confirmed", h


def test_max_dispenses_caps_the_orders_until_one_is_cancelled(stack, pharmacist):  # noqa: F811
    customer = f"C-{uuid.uuid4().hex[:8]}"
    with stack.client() as client:
        rx = approved(client, pharmacist, customer, items=[("AMOX-500", 10)], max_dispenses=1)
        assert rx["max_dispenses"] == 1
        first = ordered(stack, client, customer, rx["id"], [("AMOX-500", 2)])
        second = ordered(stack, client, customer, rx["id"], [("AMOX-500", 2)])
        cancel = client.post(f"/api/v1/orders/{first['id']}/cancel/", json={})
        assert cancel.status_code == 200, cancel.text
        third = ordered(stack, client, customer, rx["id"], [("AMOX-500", 2)])
        prescription = client.get(f"/api/v1/prescriptions/{rx['id']}/").json()
    assert first["status"] == "confirmed", first
    assert (second["status"], second["failure_reason"]) == (
        "rejected",
        "prescription_quantity_exceeded",
    )
    assert third["status"] == "confirmed", third
    assert prescription["items"][0]["dispensed_quantity"] == 2
