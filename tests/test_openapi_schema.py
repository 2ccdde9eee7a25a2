"""The published OpenAPI schema: generated without warnings, valid OpenAPI, every enum
named for good, every operation typed with the errors it can answer; and the checker
the end-to-end suite runs on every live answer finds what it must (in process here)."""

from __future__ import annotations

import copy
import datetime
import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.core.management import call_command
from openapi_spec_validator import validate as openapi_validate
from rest_framework.test import APIClient

from tests.e2e.live_schema import LiveSchema

API = "/api/v1/"
OPERATION_ID = re.compile(r"^[a-z]+(?:_[a-z]+)+$")


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("schema") / "openapi.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(path))
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def live(spec: dict[str, Any]) -> LiveSchema:
    return LiveSchema(spec)


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in spec["paths"].items()
        if path.startswith(API)
        for method, operation in item.items()
    ]


def component(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    return spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def test_the_schema_generates_without_warnings(tmp_path: Path):
    # As `manage.py spectacular --validate --fail-on-warn` in CI: raises on any warning.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "x.yaml"))


def test_the_schema_is_valid_openapi(spec):
    openapi_validate(spec)


def test_every_enum_has_a_name_of_its_own(spec):
    """A name is given, not derived from where the enum is used: a new field sharing a
    name (`status`, `reason`) would otherwise rename enums that clients already use."""
    named = set(settings.SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]) | {"BlankEnum", "NullEnum"}
    enums = {name for name, schema in spec["components"]["schemas"].items() if "enum" in schema}
    assert enums <= named, sorted(enums - named)


def test_every_operation_is_typed_with_the_errors_it_can_answer(spec):
    for path, method, operation in operations(spec):
        where = f"{method.upper()} {path}"
        assert OPERATION_ID.match(operation["operationId"]), where
        assert not operation["operationId"].startswith("v1_"), where
        assert operation["tags"], where
        responses = operation["responses"]
        assert {"500", "503"} <= set(responses), where
        if method == "post":
            assert "413" in responses, where
        if operation.get("security") == [{"ApiKeyAuth": []}]:
            assert {"401", "403", "429"} <= set(responses), where
            assert "Retry-After" in responses["429"]["headers"], where
        for status, response in responses.items():
            assert "X-Request-ID" in response["headers"], (where, status)
            schema = response["content"]["application/json"]["schema"]
            # Typed: a component, never a free-form object.
            assert set(schema) == {"$ref"}, (where, status, schema)
            body = component(spec, schema["$ref"])
            if status >= "400":
                variants = [component(spec, v["$ref"]) for v in body.get("oneOf", [])] or [body]
                for variant in variants:
                    assert set(variant["required"]) == {"type", "errors"}, (where, status)
                    entry = component(spec, variant["properties"]["errors"]["items"]["$ref"])
                    assert set(entry["required"]) == {"code", "detail", "attr"}
                    code = entry["properties"]["code"]
                    assert "enum" in code or "$ref" in code, (where, status)
            else:
                assert body.get("properties") or body.get("oneOf"), (where, status)


def test_conflicts_declare_their_codes(spec):
    conflicts = {
        operation["operationId"]: component(
            spec,
            component(
                spec, operation["responses"]["409"]["content"]["application/json"]["schema"]["$ref"]
            )["properties"]["errors"]["items"]["$ref"],
        )["properties"]["code"]["enum"]
        for _, _, operation in operations(spec)
        if "409" in operation["responses"]
    }
    assert conflicts["orders_place"] == ["idempotency_key_reused"]
    assert conflicts["orders_cancel"] == [
        "already_shipped",
        "invalid_transition",
        "quantity_exceeded",
    ]
    assert conflicts["prescriptions_review"] == ["already_reviewed"]
    assert conflicts["webhooks_logistics_tracking"] == ["otp_required"]
    assert "return_window_closed" in conflicts["orders_returns_request"]


def answer(
    status: int,
    body: Any,
    *,
    method: str = "GET",
    path: str = "/api/v1/orders/",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.Response(
        status,
        json=body,
        headers={"X-Request-ID": "r-1", **(headers or {})},
        request=httpx.Request(method, f"http://testserver{path}"),
    )


def test_the_order_examples_are_what_the_api_takes_and_answers(live, shop):
    from orders.schema import ORDER_PLACE_EXAMPLE, ORDER_RECEIVED_EXAMPLE
    from orders.serializers import OrderPlaceIn

    request = OrderPlaceIn(data=ORDER_PLACE_EXAMPLE.value, context={"client": shop[0]})
    assert request.is_valid(), request.errors
    placed = answer(
        202,
        ORDER_RECEIVED_EXAMPLE.value,
        method="POST",
        headers={"Location": f"/api/v1/orders/{ORDER_RECEIVED_EXAMPLE.value['id']}/"},
    )
    assert live.errors(placed) == []


def test_the_checker_finds_what_the_schema_does_not_describe(live):
    from orders.schema import ORDER_RECEIVED_EXAMPLE

    order = copy.deepcopy(ORDER_RECEIVED_EXAMPLE.value)
    path = f"/api/v1/orders/{order['id']}/"
    assert live.errors(answer(200, order, path=path)) == []

    grown = {**order, "loyalty_points": 3}  # a field the schema does not name
    assert any("loyalty_points" in e for e in live.errors(answer(200, grown, path=path)))
    no_status = {k: v for k, v in order.items() if k != "status"}
    assert any("status" in e for e in live.errors(answer(200, no_status, path=path)))
    unknown = {**order, "status": "teleported"}
    assert live.errors(answer(200, unknown, path=path))
    not_null = {**order, "currency": None}
    assert live.errors(answer(200, not_null, path=path))
    no_request_id = httpx.Response(200, json=order, request=httpx.Request("GET", path))
    assert any("X-Request-ID" in e for e in live.errors(no_request_id))
    # A status the operation does not declare, and a 409 code it does not declare.
    assert live.errors(answer(418, {"type": "client_error", "errors": []}, path=path))
    conflict = {"type": "client_error", "errors": [{"code": "nope", "detail": "", "attr": None}]}
    assert live.errors(answer(409, conflict, method="POST", path="/api/v1/orders/"))
    with pytest.raises(AssertionError, match="loyalty_points"):
        live.check(answer(200, grown, path=path))


@pytest.fixture
def shop(demo_catalog, simulator, settings):
    from core.tests.factories import ApiClientFactory, api_key_for

    settings.COT_PIPELINE_MODE = "inline"
    client = ApiClientFactory(name="schema-shop")
    return client, api_key_for(client)


def checked(live: LiveSchema, response: Any, method: str, path: str) -> Any:
    """A DRF test client's answer, checked as the end-to-end suite checks live ones."""
    as_httpx = httpx.Response(
        response.status_code,
        headers=list(response.headers.items()),
        content=response.content,
        request=httpx.Request(method, f"http://testserver{path}"),
    )
    assert live.errors(as_httpx) == [], response.content
    return response


@pytest.mark.django_db
def test_an_order_with_every_part_matches_the_schema(
    live, shop, django_capture_on_commit_callbacks
):
    """`OrderOut` builds the order by hand; the schema's Order must describe every part
    of it, filled in or null (the end-to-end suite sees more, later)."""
    from logistics.models import Shipment, ShipmentUpdate
    from orders.models import Order, OrderLine, Substitution
    from orders.tests.factories import ORDER_BODY

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {shop[1]}")
    body = copy.deepcopy(ORDER_BODY)
    body["items"].append({"sku": "CETI-10", "quantity": 1})
    body["delivery_address"] = {**body["delivery_address"], "email": "a.rao@example.com"}
    with django_capture_on_commit_callbacks(execute=True):
        placed = api.post(API + "orders/", body, format="json")
    checked(live, placed, "POST", API + "orders/")
    order = Order.objects.get(pk=placed.json()["id"])
    assert order.status == "confirmed", placed.json()

    # The parts a plain confirmed order lacks: a dropped line, an accepted substitute,
    # a proposed offer, a failed delivery attempt.
    first, second = OrderLine.objects.filter(order=order).order_by("pk")
    OrderLine.objects.filter(pk=first.pk).update(substituted_for="PARA-650")
    OrderLine.objects.filter(pk=second.pk).update(
        status="dropped", drop_reason="prescription_rejected"
    )
    Substitution.objects.create(
        order=order,
        line=second,
        sku=second.sku,
        substitute_sku="CETI-10-GEN",
        substitute_name="Cetirizine 10 mg (generic)",
        substitute_unit_price="12.00",
        price_difference="-3.50",
    )
    shipment = Shipment.objects.get(order_id=order.pk)
    ShipmentUpdate.objects.create(
        shipment=shipment,
        status="out_for_delivery",
        at=datetime.datetime.now(datetime.UTC),
        attempt=1,
    )
    ShipmentUpdate.objects.create(
        shipment=shipment,
        status="delivery_failed",
        at=datetime.datetime.now(datetime.UTC),
        attempt=1,
        reason="customer_unavailable",
    )
    Shipment.objects.filter(pk=shipment.pk).update(delivery_otp="123456")
    # Offers are shown for orders that hold a prescription.
    Order.objects.filter(pk=order.pk).update(prescription_id=uuid.uuid4())

    path = f"{API}orders/{order.pk}/"
    got = checked(live, api.get(path), "GET", path).json()
    assert got["items"][0]["substituted_for"] == "PARA-650"
    assert got["items"][1]["reason"] == "prescription_rejected"
    assert got["substitutions"][0]["price_difference"] == "-3.50"
    assert got["shipments"][0]["events"][1]["reason"] == "customer_unavailable"
    listed = checked(live, api.get(API + "orders/?page_size=1"), "GET", API + "orders/")
    assert listed.json()["results"][0]["id"] == str(order.pk)
    returns = f"{path}returns/"
    checked(live, api.get(returns), "GET", returns)
    with django_capture_on_commit_callbacks(execute=True):
        cancelled = api.post(f"{path}cancel/", {"reason": "test"}, format="json")
    checked(live, cancelled, "POST", f"{path}cancel/")
    again = checked(live, api.post(f"{path}cancel/", {}, format="json"), "POST", f"{path}cancel/")
    assert again.status_code == 409


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"items": [{"sku": "NOPE-1", "quantity": 1}]}, "unknown_sku"),
        ({"items": [{"sku": "PARA-500", "quantity": 1}] * 2}, "duplicate"),
        ({"items": [{"sku": "PARA-500", "quantity": 1, "colour": "red"}]}, "unknown_field"),
        ({"customer_id": "C\x00"}, "null_characters_not_allowed"),
        ({"payment_method": "cheque"}, "invalid_choice"),
        ({"items": []}, "min_length"),
    ],
)
def test_validation_errors_carry_codes_the_schema_declares(live, shop, change, code):
    from orders.tests.factories import ORDER_BODY

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {shop[1]}")
    response = api.post(API + "orders/", {**ORDER_BODY, **change}, format="json")
    assert response.status_code == 400
    assert code in [e["code"] for e in response.json()["errors"]]
    checked(live, response, "POST", API + "orders/")


@pytest.mark.django_db
def test_a_replenishment_page_matches_the_schema(live, demo_catalog):
    """Rows with a forecast, transfers and no demand, through the staff endpoint."""
    import base64

    import numpy as np
    from django.contrib.auth.models import Group, User

    from forecasting.models import Replenishment
    from forecasting.services import forecast_run
    from forecasting.tests.factories import history_write, past_days

    days = past_days(60)
    history_write({("PARA-500", "BLR-1"): np.random.default_rng(1).poisson(4, len(days))}, days)
    forecast_run(skus=["PARA-500"])
    assert Replenishment.objects.filter(current=True, status="no_demand").exists()
    Replenishment.objects.filter(current=True).exclude(status="no_demand").update(
        transfers=[{"batch": "B1", "expires_on": "2027-01-31", "quantity": 5, "to_center": "DEL-1"}]
    )
    User.objects.create_user("schema-inv", password="pw-12345", is_staff=True).groups.add(
        Group.objects.get(name="inventory")
    )
    token = base64.b64encode(b"schema-inv:pw-12345").decode()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
    path = f"{API}inventory/replenishment/"
    got = checked(live, api.get(path), "GET", path).json()
    assert {row["status"] for row in got["results"]} >= {"no_demand"}
    assert any(row["transfers"] for row in got["results"])
    bad = f"{path}?center=NOPE"
    assert checked(live, api.get(bad), "GET", bad).status_code == 400
