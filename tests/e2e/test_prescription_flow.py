"""Prescriptions end to end: the API, the live worker, a pharmacist over HTTP Basic."""

from __future__ import annotations

import copy
import datetime
import uuid

import pytest

from orders.tests.factories import ORDER_BODY

pytestmark = pytest.mark.e2e
PASSWORD = "pharmacist-e2e-pw"


@pytest.fixture(scope="module")
def pharmacist(django_db_blocker, live_stack):
    from django.contrib.auth.models import Group, User

    from orders.roles import roles_sync

    username = f"ph-{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock():
        roles_sync()
        user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
        user.groups.add(Group.objects.get(name="pharmacist"))
    return live_stack.client(None, auth=(username, PASSWORD))


def new_customer():
    return f"C-{uuid.uuid4().hex[:8]}"


def upload(client, customer, quantity=10, issued_days_ago=3, *, items=None, **extra):
    """Upload a prescription over the API (`quantity` of AMOX-500 unless `items` says
    otherwise); its id."""
    issued = datetime.date.today() - datetime.timedelta(days=issued_days_ago)
    items = items or [("AMOX-500", quantity)]
    response = client.post(
        "/api/v1/prescriptions/",
        json={
            "customer_id": customer,
            "patient_name": "A. Rao",
            "doctor_name": "Dr. B. Iyer",
            "doctor_registration_no": "KMC-12345",
            "issued_on": issued.isoformat(),
            "items": [{"sku": sku, "quantity": n} for sku, n in items],
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def order(client, customer, prescription_id, quantity=2):
    body = copy.deepcopy(ORDER_BODY)
    body.update(
        customer_id=customer,
        prescription_id=prescription_id,
        items=[{"sku": "AMOX-500", "quantity": quantity}],
    )
    response = client.post("/api/v1/orders/", json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def charges_of(stack, order_id):
    return [c for c in stack.simulator.ledger()["charges"] if order_id in c["idempotency_key"]]


def test_pending_holds_then_approval_confirms(stack, pharmacist):
    customer = new_customer()
    with stack.client() as client:
        rx = upload(client, customer)
        order_id = order(client, customer, rx)
        held = stack.wait_for(client, order_id)
        assert held["status"] == "on_hold"
        assert charges_of(stack, order_id) == []

        review = pharmacist.post(
            f"/api/v1/prescriptions/{rx}/review/", json={"decision": "approved", "note": "ok"}
        )
        assert review.status_code == 200, review.text
        done = stack.wait_for(client, order_id, until=lambda o: o["status"] != "on_hold")
        done = stack.wait_for(client, order_id, until=lambda o: o["status"] != "processing")
        prescription = client.get(f"/api/v1/prescriptions/{rx}/").json()
    assert done["status"] == "confirmed", done
    assert [c["status"] for c in charges_of(stack, order_id)] == ["captured"]
    assert prescription["items"][0]["dispensed_quantity"] == 2
    assert (
        pharmacist.post(
            f"/api/v1/prescriptions/{rx}/review/", json={"decision": "rejected"}
        ).status_code
        == 409
    )


def test_rejection_rejects_and_compensates(stack, pharmacist):
    customer = new_customer()
    with stack.client() as client:
        rx = upload(client, customer)
        order_id = order(client, customer, rx)
        assert stack.wait_for(client, order_id)["status"] == "on_hold"
        pharmacist.post(f"/api/v1/prescriptions/{rx}/review/", json={"decision": "rejected"})
        done = stack.wait_for(client, order_id, until=lambda o: o["status"] == "rejected")
    assert done["failure_reason"] == "prescription_rejected"
    assert {"prescription.failed", "inventory.released"} <= {e["type"] for e in done["events"]}
    assert done["payment"]["status"] == "voided"
    assert charges_of(stack, order_id) == []


def test_quantity_is_exhausted_across_two_orders(stack, pharmacist):
    customer = new_customer()
    with stack.client() as client:
        rx = upload(client, customer, quantity=10)
        pharmacist.post(f"/api/v1/prescriptions/{rx}/review/", json={"decision": "approved"})
        first = stack.wait_for(client, order(client, customer, rx, quantity=6))
        second = stack.wait_for(client, order(client, customer, rx, quantity=6))
    assert first["status"] == "confirmed"
    assert (second["status"], second["failure_reason"]) == (
        "rejected",
        "prescription_quantity_exceeded",
    )


@pytest.mark.parametrize(
    ("days_ago", "other_customer", "reason"),
    [(3, True, "prescription_invalid"), (200, False, "prescription_expired")],
)
def test_other_customers_and_expired_prescriptions_are_rejected(
    stack, pharmacist, days_ago, other_customer, reason
):
    customer = new_customer()
    with stack.client() as client:
        rx = upload(
            client, new_customer() if other_customer else customer, issued_days_ago=days_ago
        )
        pharmacist.post(f"/api/v1/prescriptions/{rx}/review/", json={"decision": "approved"})
        done = stack.wait_for(client, order(client, customer, rx))
    assert (done["status"], done["failure_reason"]) == ("rejected", reason)


def test_future_dated_prescriptions_are_refused_at_the_door(stack):
    tomorrow = (datetime.date.today() + datetime.timedelta(days=1)).isoformat()
    with stack.client() as client:
        response = client.post(
            "/api/v1/prescriptions/",
            json={
                "customer_id": "C-1",
                "patient_name": "A",
                "doctor_name": "B",
                "doctor_registration_no": "KMC-12345",
                "issued_on": tomorrow,
                "items": [{"sku": "AMOX-500", "quantity": 1}],
            },
        )
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "issued_on"


def test_clients_cannot_review(stack):
    with stack.client() as client:
        rx = upload(client, new_customer())
        response = client.post(f"/api/v1/prescriptions/{rx}/review/", json={"decision": "approved"})
    assert response.status_code == 403
