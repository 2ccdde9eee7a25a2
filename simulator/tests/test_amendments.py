"""Amending a booked parcel before pickup: its new content, once per idempotency key."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from simulator.app import CourierConfig, create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

NO_COURIERS = CourierConfig(enabled=False)
LEFT = [{"sku": "PARA-500", "quantity": 1}]


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app("", NO_COURIERS)) as test_client:
        yield test_client


def book(client: TestClient, partner: str = "swift") -> str:
    body = {
        "reference": "COT-00000001",
        "pincode": "560001",
        "items": [{"sku": "PARA-500", "batch": "B1", "quantity": 2}, {"sku": "ORS", "quantity": 1}],
        "idempotency_key": f"book-{partner}",
    }
    response = client.post(f"/logistics/{partner}/shipments", json=body)
    assert response.status_code == 200, response.text
    return response.json()["awb"]


def amend(client: TestClient, to: str, key: str = "a1", partner: str = "swift", **overrides: Any):
    body = {"awb": to, "items": LEFT, "idempotency_key": key, **overrides}
    return client.post(f"/logistics/{partner}/amendments", json=body)


def amendments(client: TestClient) -> list[dict[str, Any]]:
    return client.get("/__ledger__").json()["amendments"]


def test_an_amendment_is_recorded_once_per_key(client: TestClient) -> None:
    awb = book(client)
    first = amend(client, awb)
    assert first.status_code == 200
    assert first.json() == {"awb": awb, "status": "amended", "items": LEFT}
    # A retry with the same key gets the first answer, even with another body.
    again = amend(client, awb, items=[{"sku": "ORS", "quantity": 1}])
    assert again.json() == first.json()
    [entry] = amendments(client)
    assert (entry["idempotency_key"], entry["awb"], entry["items"]) == ("a1", awb, LEFT)
    assert entry["reference"] == "COT-00000001" and entry["target"] == "logistics/swift"
    assert amend(client, awb, key="a2").status_code == 200
    assert len(amendments(client)) == 2


def test_unknown_picked_up_or_cancelled_parcels_cannot_be_amended(client: TestClient) -> None:
    awb = book(client)
    unknown = amend(client, "SWIFT-0000000000")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_shipment")
    # The AWB is the partner's own: the other partner does not know it.
    assert amend(client, awb, partner="roadie").status_code == 404

    world = client.app.state.world
    world.shipments[("logistics/swift", awb)]["status"] = "picked_up"
    late = amend(client, awb)
    assert (late.status_code, late.json()["error"]) == (409, "not_amendable")

    other = book(client, partner="roadie")
    assert client.post(f"/logistics/roadie/shipments/{other}/cancel").status_code == 200
    assert amend(client, other, partner="roadie").status_code == 409
    assert amendments(client) == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"items": []},
        {"items": [{"sku": "PARA-500"}]},
        {"items": [{"sku": "PARA-500", "quantity": 0}]},
        {"idempotency_key": ""},
        {"awb": None},
    ],
)
def test_malformed_amendments_are_400_and_do_nothing(
    client: TestClient, overrides: dict[str, Any]
) -> None:
    awb = book(client)
    assert amend(client, awb, **overrides).status_code == 400
    assert amendments(client) == []


def test_down_answers_503_and_amends_nothing(client: TestClient) -> None:
    awb = book(client)
    client.post("/__control__", json={"target": "logistics/swift", "down": True})
    assert amend(client, awb).status_code == 503
    client.post("/__control__", json={"target": "logistics/swift", "down": False})
    assert amend(client, awb).status_code == 200
    assert len(amendments(client)) == 1
