"""Every endpoint by {no key, bad key, other client's key, staff without the role}: the
documented status (401 without or with bad credentials, 404 for another client's
objects, 403 for staff whose role does not allow it), nothing leaked, nothing written."""

from __future__ import annotations

import base64
import json

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from core.tests.factories import ApiClientFactory, api_key_for
from notifications.models import WebhookDelivery
from orders.tests.factories import ORDER_BODY, place_order
from prescriptions.enums import PrescriptionStatus
from prescriptions.tests.factories import prescription_with
from tests.hostile.test_hostile_bodies import RX_BODY, counts

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(demo_catalog, simulator):
    owner = ApiClientFactory(name="owner")
    other = ApiClientFactory(name="other")
    order = place_order(owner, items=[("PARA-500", 1)])
    rx = prescription_with(
        [("AMOX-500", 10)], client=owner, status=PrescriptionStatus.PENDING_REVIEW
    )
    staff = User.objects.create_user("inv-1", password="pw-inv-1", is_staff=True)
    staff.groups.add(Group.objects.get(name="inventory"))
    event = order.events.order_by("pk").first()
    delivery = WebhookDelivery.objects.create(
        client=owner, order=order, event=event, event_type=event.type
    )
    return {
        "owner": api_key_for(owner),
        "other": api_key_for(other),
        "order": order,
        "rx": rx,
        "delivery": delivery,
    }


def credentials(kind: str, world: dict) -> dict[str, str]:
    if kind == "none":
        return {}
    if kind == "bad":
        return {"HTTP_AUTHORIZATION": "Api-Key not.a-real-key"}
    if kind == "other":
        return {"HTTP_AUTHORIZATION": f"Api-Key {world['other']}"}
    token = base64.b64encode(b"inv-1:pw-inv-1").decode()  # staff, inventory role only
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def endpoints(world: dict) -> list[tuple[str, str, dict | None]]:
    order, rx = world["order"], world["rx"]
    return [
        ("GET", "/api/v1/orders/", None),
        ("POST", "/api/v1/orders/", ORDER_BODY),
        ("GET", f"/api/v1/orders/{order.pk}/", None),
        ("GET", "/api/v1/products/", None),
        ("POST", "/api/v1/prescriptions/", RX_BODY),
        ("GET", f"/api/v1/prescriptions/{rx.pk}/", None),
        ("POST", f"/api/v1/prescriptions/{rx.pk}/review/", {"decision": "approved"}),
        ("POST", f"/api/v1/orders/{order.pk}/cancel/", {"reason": "x"}),
        ("POST", f"/api/v1/orders/{order.pk}/collect/", {"pickup_code": "123456"}),
        ("POST", f"/api/v1/orders/{order.pk}/payment/", {"payment_method": "cod"}),
        ("GET", f"/api/v1/orders/{order.pk}/returns/", None),
        (
            "POST",
            f"/api/v1/orders/{order.pk}/returns/",
            {"reason": "damaged", "lines": [{"sku": "PARA-500", "quantity": 1}]},
        ),
        ("GET", "/api/v1/webhook-deliveries/", None),
        ("POST", f"/api/v1/webhook-deliveries/{world['delivery'].pk}/resend/", {}),
        ("GET", "/api/v1/inventory/replenishment/", None),
    ]


# (method, path kind) -> expected status per credential kind. `other` is a valid client:
# it may list (its own, empty) and create, and gets 404 for the owner's objects.
EXPECTED = {
    "none": {"*": 401},
    "bad": {"*": 401},
    "other": {
        "GET /api/v1/orders/": 200,
        "POST /api/v1/orders/": 202,
        "GET /api/v1/orders/{id}/": 404,
        "GET /api/v1/products/": 200,
        "POST /api/v1/prescriptions/": 201,
        "GET /api/v1/prescriptions/{id}/": 404,
        "POST /api/v1/prescriptions/{id}/review/": 403,  # a client is never a pharmacist
        "POST /api/v1/orders/{id}/cancel/": 404,
        "POST /api/v1/orders/{id}/collect/": 404,
        "POST /api/v1/orders/{id}/payment/": 404,
        "GET /api/v1/orders/{id}/returns/": 404,
        "POST /api/v1/orders/{id}/returns/": 404,
        "GET /api/v1/webhook-deliveries/": 200,  # its own: none
        "POST /api/v1/webhook-deliveries/{delivery}/resend/": 404,
        "GET /api/v1/inventory/replenishment/": 403,  # staff only
    },
    # The staff user has the inventory role only: the one endpoint for that role answers.
    "staff_without_role": {"*": 403, "GET /api/v1/inventory/replenishment/": 200},
}


def shape(path: str, world: dict) -> str:
    path = path.replace(str(world["order"].pk), "{id}").replace(str(world["rx"].pk), "{id}")
    return path.replace(f"/{world['delivery'].pk}/", "/{delivery}/")


@pytest.mark.parametrize("kind", ["none", "bad", "other", "staff_without_role"])
def test_authorisation_matrix(world, kind, django_capture_on_commit_callbacks):
    client = APIClient()
    for method, path, body in endpoints(world):
        expected = EXPECTED[kind].get(f"{method} {shape(path, world)}", EXPECTED[kind].get("*"))
        before = counts()
        data = json.dumps(body) if body is not None else None
        response = client.generic(
            method, path, data or "", content_type="application/json", **credentials(kind, world)
        )
        assert response.status_code == expected, (kind, method, path, response.content[:300])
        text = response.content.decode()
        # Nothing of the owner's leaks to anyone else.
        assert world["order"].number not in text and str(world["rx"].pk) not in text
        if expected >= 400:
            assert set(response.json()) == {"type", "errors"}
            assert counts() == before, (kind, method, path)
    world["rx"].refresh_from_db()
    assert world["rx"].status == PrescriptionStatus.PENDING_REVIEW
    world["order"].refresh_from_db()
    assert not world["order"].status.startswith("cancel")


def test_payments_webhook_without_a_valid_signature_is_401_for_everyone(world):
    body = json.dumps({"reference": "x", "status": "captured", "at": "2026-01-01T00:00:00Z"})
    for kind in ("none", "bad", "other", "staff_without_role"):
        before = counts()
        response = APIClient().generic(
            "POST",
            "/api/v1/webhooks/payments/",
            body,
            content_type="application/json",
            **credentials(kind, world),
        )
        assert response.status_code == 401, (kind, response.content)
        assert response.json()["errors"][0]["code"] == "bad_signature"
        assert counts() == before
