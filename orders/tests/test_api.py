"""The order API in-process (DRF's test client): shapes, access rules, idempotency."""

import json
import uuid
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from core.models import ClientAPIKey
from core.tests.factories import ApiClientFactory, api_key_for
from inventory.models import Product
from orders.models import Order, OrderEvent, OrderLine
from orders.tests.factories import ORDER_BODY as BODY

pytestmark = pytest.mark.django_db
URL = "/api/v1/orders/"


def api(key=None):
    client = APIClient()
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.fixture
def key(demo_catalog):
    return api_key_for(ApiClientFactory(name="web-shop"))


def post(client, body, **headers):
    return client.post(URL, data=json.dumps(body), content_type="application/json", **headers)


def with_(path, value):
    body = json.loads(json.dumps(BODY))
    target = body
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is KeyError:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return body


def test_place_order_answers_202_with_the_order(key):
    response = post(api(key), BODY)
    assert response.status_code == 202, response.content
    order = response.json()
    assert response["Location"] == f"/api/v1/orders/{order['id']}/"
    assert order["status"] == "received"
    assert order["number"].startswith("COT-")
    assert order["total_amount"] == "60.00"
    assert order["items"][0] == {
        "sku": "PARA-500",
        "name": "Paracetamol 500 mg, 15 tablets",
        "quantity": 2,
        "cancelled_quantity": 0,
        "unit_price": "30.00",
        "line_total": "60.00",
        "requires_prescription": False,
        "status": "active",
        "reason": None,
    }
    assert order["on_partial"] == "reject"
    assert order["payment"]["method"] == "upi"
    assert [e["type"] for e in order["events"]] == ["order.received"]
    assert order["events"][0]["at"].endswith("Z")


@pytest.mark.parametrize(
    ("body", "attr", "code"),
    [
        (with_("items.0.quantity", 0), "items.0.quantity", "min_value"),
        (with_("items.0.quantity", 101), "items.0.quantity", "max_value"),
        (with_("items.0.quantity", "two"), "items.0.quantity", "invalid"),
        (with_("items", []), "items", "min_length"),
        (with_("items", [{"sku": "PARA-500", "quantity": 1}] * 2), "items.1.sku", "duplicate"),
        (with_("items.0.sku", "NOPE-1"), "items.0.sku", "unknown_sku"),
        (with_("items.0.sku", "COLD-FDC"), "items.0.sku", "unknown_sku"),  # inactive
        (with_("items.0.colour", "red"), "items.0.colour", "unknown_field"),
        (with_("delivery_address.pincode", "060001"), "delivery_address.pincode", "invalid"),
        (with_("delivery_address.phone", "9800000001"), "delivery_address.phone", "invalid"),
        (with_("delivery_address.city", KeyError), "delivery_address.city", "required"),
        (with_("payment_method", "cheque"), "payment_method", "invalid_choice"),
        (with_("payment_token", ""), "payment_token", "invalid"),
        (with_("channel", "mobile"), "channel", "invalid"),
        (with_("coupon", "FREE"), "coupon", "unknown_field"),
        (with_("customer_id", "C\x00"), "customer_id", "null_characters_not_allowed"),
        (with_("prescription_id", "not-a-uuid"), "prescription_id", "invalid"),
    ],
)
def test_bad_bodies_get_400_in_the_contract_shape_and_write_nothing(key, body, attr, code):
    response = post(api(key), body)
    assert response.status_code == 400, response.content
    error = response.json()
    assert error["type"] == "validation_error"
    assert {"code": code, "attr": attr} in [
        {"code": e["code"], "attr": e["attr"]} for e in error["errors"]
    ], error
    assert not Order.objects.exists() and not OrderLine.objects.exists()
    assert not OrderEvent.objects.exists()


@pytest.mark.parametrize("raw", ["{", "[]", '"x"', "null", '{"items": 5}'])
def test_malformed_json_is_a_400(key, raw):
    response = api(key).post(URL, data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["type"] in ("validation_error", "client_error")


def test_bodies_over_one_mebibyte_are_refused_with_413(key):
    body = with_("customer_id", "x" * (1024 * 1024 + 1))
    response = post(api(key), body)
    assert response.status_code == 413
    assert response.json()["errors"][0]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    "header", [None, "Api-Key nope", "Api-Key abc.def", "Bearer x", "Api-Key \x00"]
)
def test_missing_or_bad_credentials_are_401(demo_catalog, header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    assert post(client, BODY).status_code == 401
    assert client.get(URL).status_code == 401


def test_a_revoked_key_is_401(key):

    ClientAPIKey.objects.update(revoked=True)
    assert api(key).get(URL).status_code == 401


def test_staff_logins_cannot_use_the_client_endpoints(key):
    user = User.objects.create_user("ops", password="pw-12345678", is_staff=True)
    client = APIClient()
    client.force_login(user)
    assert client.get(URL).status_code == 403


def test_idempotent_replay_returns_the_same_order(key):
    client = api(key)
    first = post(client, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    second = post(client, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == second.status_code == 202
    assert second["Idempotent-Replayed"] == "true"
    assert first.json()["id"] == second.json()["id"]
    assert Order.objects.count() == 1


def test_same_key_with_another_body_is_409(key):
    client = api(key)
    post(client, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    response = post(client, with_("items.0.quantity", 3), HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "idempotency_key_reused"
    assert Order.objects.count() == 1


def test_keys_are_per_client(key):
    other = api_key_for(ApiClientFactory())
    a = post(api(key), BODY, HTTP_IDEMPOTENCY_KEY="k-1").json()
    b = post(api(other), BODY, HTTP_IDEMPOTENCY_KEY="k-1").json()
    assert a["id"] != b["id"]


def test_an_idempotency_key_over_255_characters_is_400(key):
    response = post(api(key), BODY, HTTP_IDEMPOTENCY_KEY="k" * 256)
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "Idempotency-Key"


def test_another_clients_order_is_404(key):
    order_id = post(api(key), BODY).json()["id"]
    other = api(api_key_for(ApiClientFactory()))
    assert api(key).get(f"{URL}{order_id}/").status_code == 200
    response = other.get(f"{URL}{order_id}/")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"
    assert other.get(f"{URL}{uuid.uuid4()}/").status_code == 404
    assert other.get(URL).json()["results"] == []


def test_list_is_newest_first_filtered_and_cursor_paginated(key):
    client = api(key)
    ids = [post(client, with_("customer_id", f"C-{i}")).json()["id"] for i in range(3)]
    page = client.get(URL, {"page_size": 2}).json()
    assert [o["id"] for o in page["results"]] == ids[::-1][:2]
    rest = client.get(page["next"]).json()
    assert [o["id"] for o in rest["results"]] == [ids[0]]
    assert [o["id"] for o in client.get(URL, {"customer_id": "C-1"}).json()["results"]] == [ids[1]]
    assert client.get(URL, {"status": "confirmed"}).json()["results"] == []
    assert client.get(URL, {"status": "bogus"}).status_code == 400
    assert client.get(URL, {"created_after": "yesterday"}).status_code == 400


def test_unknown_urls_answer_in_the_error_shape(key):
    response = api(key).get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json()["type"] == "client_error"


def test_health_and_schema(db):
    client = APIClient()
    assert client.get("/healthz").json() == {"status": "ok"}
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/orders/" in schema.content


def test_browsable_docs_serve_their_own_assets(db):
    page = APIClient().get("/api/docs/")
    assert page.status_code == 200
    assert b"cdn" not in page.content.lower()


def test_the_request_id_is_returned_and_kept_on_the_order(key):
    response = post(api(key), BODY, HTTP_X_REQUEST_ID="support-ticket-42")
    assert response["X-Request-ID"] == "support-ticket-42"
    assert Order.objects.get(pk=response.json()["id"]).request_id == "support-ticket-42"

    response = post(api(key), {**BODY, "customer_id": "C-2"}, HTTP_X_REQUEST_ID="no good")
    generated = response["X-Request-ID"]
    assert generated != "no good" and len(generated) == 32
    assert Order.objects.get(pk=response.json()["id"]).request_id == generated


def test_the_answer_to_a_new_order_is_what_reading_it_back_gives(key):
    client = api(key)
    placed = post(client, BODY).json()
    assert placed == client.get(f"{URL}{placed['id']}/").json()


def test_placing_an_order_costs_eight_statements(key, django_capture_on_commit_callbacks):
    """Key, catalog; BEGIN, number, order, lines, event, COMMIT (the webhook receiver
    answers from its per-process cache; the pipeline start is a Celery message, replaced
    here). An
    Idempotency-Key adds its lookup; a replay is the key, the key's lookup and the order
    read back (order, lines, events, shipments, payments)."""
    client = api(key)
    body = with_("items", [{"sku": "PARA-500", "quantity": 2}, {"sku": "ORS-ORG", "quantity": 1}])
    with mock.patch("orders.pipeline.start"), django_capture_on_commit_callbacks(execute=True):
        # Steady state: the per-process caches (webhook clients, 5 s) are loaded.
        assert post(client, body).status_code == 202
    for headers, expected in (
        ({}, 8),
        ({"HTTP_IDEMPOTENCY_KEY": "k-1"}, 9),
        ({"HTTP_IDEMPOTENCY_KEY": "k-1"}, 7),
    ):
        with (
            CaptureQueriesContext(connection) as queries,
            mock.patch("orders.pipeline.start") as start,
            django_capture_on_commit_callbacks(execute=True),
        ):
            assert post(client, body, **headers).status_code == 202
        assert len(queries) == expected, "\n".join(q["sql"][:60] for q in queries)
        assert start.call_count == (expected != 7)


def test_a_used_key_wins_over_the_catalog(key):
    """A used key answers as before (the replay, or 409 for another body) even once
    its SKU is gone from the catalog."""

    client = api(key)
    first = post(client, BODY, HTTP_IDEMPOTENCY_KEY="k-1").json()
    Product.objects.filter(sku="PARA-500").update(active=False)
    replay = post(client, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    assert replay.status_code == 202 and replay["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == first["id"]
    other = post(client, with_("items.0.sku", "NOPE-1"), HTTP_IDEMPOTENCY_KEY="k-1")
    assert other.status_code == 409
    assert post(client, with_("items.0.sku", "NOPE-1")).status_code == 400
    assert Order.objects.count() == 1
