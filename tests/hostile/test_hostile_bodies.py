"""Hostile bodies against every endpoint that writes: each gets a 4xx in the contract's
error shape and nothing is written (row counts of every table the API can touch)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from core.tests.factories import BURST_LIMITS, ApiClientFactory, api_key_for
from orders.tests.factories import ORDER_BODY

pytestmark = pytest.mark.django_db

RX_BODY = {
    "customer_id": "C-1001",
    "patient_name": "A. Rao",
    "doctor_name": "Dr. B. Iyer",
    "doctor_registration_no": "KMC-12345",
    "issued_on": "2026-11-20",
    "items": [{"sku": "AMOX-500", "quantity": 10}],
}
INJECTIONS = [
    "'; DROP TABLE orders_order; --",
    '" OR 1=1 --',
    "{{ settings.SECRET_KEY }}",
    "{% debug %}",
    "${7*7}",
    "<script>alert(1)</script>",
    "\x00\x01\x1f",
    "\u202e\ufeff\U0001f48a",
    "\ud800",
]
# (DRF coerces "1" and true to 1, a leniency, not a hole: left out.)
NUMBERS = [-1, 0, 10**30, -(10**30), 1.5, float("1e308"), "x", [], {}, None]


def counts() -> dict[str, int]:
    from inventory.models import Reservation
    from orders.models import Order, OrderEvent, OrderLine, OrderStep
    from payments.models import Payment
    from prescriptions.models import Prescription

    models = (Order, OrderLine, OrderEvent, OrderStep, Payment, Reservation, Prescription)
    return {m.__name__: m.objects.count() for m in models}


@pytest.fixture
def api(demo_catalog, simulator) -> APIClient:
    client = APIClient()
    key = api_key_for(ApiClientFactory(**BURST_LIMITS))  # hostile bodies come in bursts
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def assert_rejected(response: Any, before: dict[str, int]) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    body = response.json()
    assert set(body) == {"type", "errors"}, body
    assert all({"code", "detail", "attr"} <= set(e) for e in body["errors"]), body
    assert counts() == before


def post_raw(api: APIClient, url: str, raw: bytes | str) -> Any:
    return api.generic("POST", url, raw, content_type="application/json")


def string_paths(value: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in string_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in string_paths(v, (*path, i))]
    return [path] if isinstance(value, str) else []


def replaced(body: dict, path: tuple, value: Any) -> dict:
    data = copy.deepcopy(body)
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return data


ENDPOINTS = [("/api/v1/orders/", ORDER_BODY), ("/api/v1/prescriptions/", RX_BODY)]


@pytest.mark.parametrize(("url", "body"), ENDPOINTS)
def test_injection_unicode_and_control_characters_in_every_string_field(api, url, body):
    for path in string_paths(body):
        for value in INJECTIONS:
            before = counts()
            data = replaced(body, path, value)
            response = post_raw(api, url, json.dumps(data))
            if response.status_code < 400:
                # Some free-text fields take any text (a name with an emoji): stored
                # verbatim, never interpreted. Only the order's own rows may appear.
                assert response.status_code in (201, 202), response.content[:300]
                continue
            assert_rejected(response, before)


@pytest.mark.parametrize(("url", "body"), ENDPOINTS)
def test_negative_huge_and_wrong_typed_numbers(api, url, body):
    # An order line takes at most 100; a prescription may prescribe more.
    for value in NUMBERS + ([101] if "orders" in url else []):
        before = counts()
        response = post_raw(api, url, json.dumps(replaced(body, ("items", 0, "quantity"), value)))
        assert_rejected(response, before)


@pytest.mark.parametrize(("url", "body"), ENDPOINTS)
def test_malformed_nested_oversized_and_long_bodies(api, url, body):
    deep = "[" * 100_000 + "]" * 100_000
    deep_object = '{"a":' * 5_000 + "1" + "}" * 5_000
    lines = json.dumps({**body, "customer_id": "\n".join(["x"] * 10_000)})
    many_items = json.dumps({**body, "items": [{"sku": "PARA-500", "quantity": 1}] * 10_000})
    huge = json.dumps({**body, "customer_id": "x" * (2 * 1024 * 1024)})
    for raw in (
        deep,
        deep_object,
        lines,
        many_items,
        "{",
        "null",
        "[]",
        '"text"',
        "\xff\xfe",
        b"\xff\xfe\x00garbage",
        '{"customer_id": NaN}',
        json.dumps({**body, "unknown": 1}),
        json.dumps({**body, "items": {"sku": "PARA-500"}}),
    ):
        before = counts()
        assert_rejected(post_raw(api, url, raw), before)
    before = counts()
    response = post_raw(api, url, huge)
    assert response.status_code == 413
    assert counts() == before


@pytest.mark.parametrize(
    "value", ["5417-03-28T11:50:09+23:17", "0001-01-01T00:00:00+23:00", "9999-12-31T23:59:59-23:00"]
)
def test_date_time_filters_out_of_the_databases_range_are_not_500(api, value):
    for name in ("created_after", "created_before"):
        response = api.get("/api/v1/orders/", {name: value})
        assert response.status_code in (200, 400), response.content[:300]
        if response.status_code == 400:
            assert response.json()["errors"][0]["attr"] == name
