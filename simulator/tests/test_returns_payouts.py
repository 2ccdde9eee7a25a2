"""Reverse pickups, UPI payouts and proof of delivery (the courier's OTP) in the simulator."""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from simulator.app import CourierConfig, create_app, parse_latency_spec
from simulator.tests.test_courier import HAPPY, Receiver, courier_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

NO_COURIERS = CourierConfig(enabled=False)
ITEMS = [{"sku": "PARA-500", "quantity": 2}, {"sku": "ORS-1", "quantity": 1}]


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app("", NO_COURIERS)) as test_client:
        yield test_client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    deadline = time.monotonic() + 10
    while not receiver.server.started:
        assert time.monotonic() < deadline, "the receiver did not start"
        time.sleep(0.01)
    yield receiver
    receiver.server.should_exit = True
    receiver.thread.join(timeout=10)


def ledger(client: TestClient) -> dict[str, list[dict[str, Any]]]:
    return client.get("/__ledger__").json()


def control(client: TestClient, **settings: Any) -> dict[str, Any]:
    response = client.post("/__control__", json=settings)
    assert response.status_code == 200, response.text
    return response.json()


def book_return(client: TestClient, key: str, partner: str = "swift", **overrides: Any):
    body = {"reference": "COT-00000001", "pincode": "560001", "items": ITEMS}
    return client.post(
        f"/logistics/{partner}/returns", json={**body, "idempotency_key": key, **overrides}
    )


def payout(client: TestClient, key: str, gw: str = "alpha", **overrides: Any):
    body = {"vpa": "asha.k@okicici", "amount": "249.50", "reference": "COT-00000001"}
    return client.post(
        f"/gateways/{gw}/payouts", json={**body, "idempotency_key": key, **overrides}
    )


# --------------------------------------------------------------------------- reverse pickups


def test_reverse_pickup_is_booked_once_per_key(client: TestClient) -> None:
    first = book_return(client, "order:1:return:1")
    assert first.status_code == 200, first.text
    answer = first.json()
    assert re.fullmatch(r"SWIFT-R\d{10}", answer["awb"])
    assert answer["status"] == "booked"
    assert answer["pickup_date"] == (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    assert book_return(client, "order:1:return:1").json() == answer  # a replay, not a booking
    other = book_return(client, "order:1:return:1", partner="roadie")  # keys are per partner
    assert re.fullmatch(r"ROADIE-R\d{10}", other.json()["awb"])
    returns = ledger(client)["returns"]
    assert [(r["target"], r["awb"]) for r in returns] == [
        ("logistics/swift", answer["awb"]),
        ("logistics/roadie", other.json()["awb"]),
    ]
    assert returns[0]["items"] == ITEMS
    assert returns[0]["pincode"] == "560001"
    assert returns[0]["idempotency_key"] == "order:1:return:1"
    assert ledger(client)["shipments"] == []  # a reverse pickup is not a forward shipment
    tracked = client.get(f"/logistics/swift/track/{answer['awb']}").json()
    assert tracked == {"awb": answer["awb"], "partner": "swift", "status": "booked"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"reference": ""},
        {"pincode": None},
        {"items": []},
        {"items": [{"sku": "PARA-500"}]},
        {"items": [{"sku": "PARA-500", "quantity": 0}]},
        {"items": [{"sku": "PARA-500", "quantity": True}]},
        {"items": [{"sku": "", "quantity": 1}]},
        {"items": [{"sku": "PARA-500", "quantity": 1, "batch": "B1"}]},
        {"idempotency_key": None},
    ],
)
def test_malformed_reverse_pickups_are_400(client: TestClient, overrides: dict[str, Any]) -> None:
    response = book_return(client, "r1", **overrides)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert ledger(client)["returns"] == []
    # Nothing was stored under the key: the fixed request books.
    assert book_return(client, "r1").status_code == 200


def test_reverse_pickups_honour_the_partner_controls(client: TestClient) -> None:
    control(client, target="logistics/swift", down=True)
    assert book_return(client, "r1").status_code == 503
    control(client, target="logistics/swift", down=False, error_rate=1.0)
    assert book_return(client, "r1").status_code == 500
    control(client, target="logistics/swift", error_rate=0.0, unserviceable_prefixes=["56"])
    refused = book_return(client, "r1")
    assert (refused.status_code, refused.json()["error"]) == (422, "unserviceable")
    assert ledger(client)["returns"] == []
    control(client, target="logistics/swift", unserviceable_prefixes=[])
    assert book_return(client, "r1").status_code == 200
    assert len(ledger(client)["returns"]) == 1
    assert client.get("/__control__").json()["requests"]["logistics/swift"] == 4


# --------------------------------------------------------------------------- payouts


def test_payout_is_paid_once_per_key(client: TestClient) -> None:
    first = payout(client, "order:7:payout")
    assert first.status_code == 200, first.text
    answer = first.json()
    assert re.fullmatch(r"po_[0-9a-f]+", answer["id"])
    assert (answer["status"], answer["amount"], answer["vpa"]) == (
        "paid",
        "249.50",
        "asha.k@okicici",
    )
    assert payout(client, "order:7:payout").json() == answer  # a replay pays nothing more
    other = payout(client, "order:7:payout", gw="beta")
    assert other.json()["id"] != answer["id"]  # keys are per gateway
    payouts = ledger(client)["payouts"]
    assert [(p["target"], p["id"], p["amount"]) for p in payouts] == [
        ("gateways/alpha", answer["id"], "249.50"),
        ("gateways/beta", other.json()["id"], "249.50"),
    ]
    assert payouts[0]["reference"] == "COT-00000001"
    assert payouts[0]["idempotency_key"] == "order:7:payout"
    filtered = client.get("/__ledger__", params={"reference": "COT-00000001"}).json()
    assert len(filtered["payouts"]) == 2
    assert ledger(client)["refunds"] == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"vpa": "asha"},
        {"vpa": "asha@"},
        {"vpa": "@okicici"},
        {"vpa": "asha@ok icici"},
        {"vpa": "asha@bank@bank"},
        {"vpa": None},
        {"amount": "0.00"},
        {"amount": "-1.00"},
        {"amount": "1.001"},
        {"amount": None},
        {"idempotency_key": ""},
    ],
)
def test_malformed_payouts_are_400(client: TestClient, overrides: dict[str, Any]) -> None:
    response = payout(client, "p1", **overrides)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert ledger(client)["payouts"] == []
    assert payout(client, "p1").status_code == 200


def test_payouts_honour_the_gateway_controls(client: TestClient) -> None:
    control(client, target="gateways/alpha", down=True)
    assert payout(client, "p1").status_code == 503
    control(client, target="gateways/alpha", down=False, error_rate=1.0)
    assert payout(client, "p1").status_code == 500
    assert ledger(client)["payouts"] == []
    control(client, target="gateways/alpha", error_rate=0.0, kind_latency_ms={"payouts": 50})
    started = time.monotonic()
    assert payout(client, "p1").status_code == 200
    assert time.monotonic() - started >= 0.05
    assert len(ledger(client)["payouts"]) == 1


def test_new_kinds_take_start_up_latencies() -> None:
    assert parse_latency_spec("payouts=30,returns=40") == {"payouts": 30.0, "returns": 40.0}
    with TestClient(create_app("payouts=30,returns=40", NO_COURIERS)) as client:
        started = time.monotonic()
        assert payout(client, "p1").status_code == 200
        assert time.monotonic() - started >= 0.03
        started = time.monotonic()
        assert book_return(client, "r1").status_code == 200
        assert time.monotonic() - started >= 0.04


def test_reset_clears_returns_and_payouts(client: TestClient) -> None:
    first = payout(client, "p1").json()
    book_return(client, "r1")
    client.post("/__reset__")
    assert ledger(client)["payouts"] == ledger(client)["returns"] == []
    assert payout(client, "p1").json()["id"] != first["id"]


# --------------------------------------------------------------------------- proof of delivery


def book(client: TestClient, key: str, **extra: Any) -> str:
    body = {"reference": "COT-00000001", "pincode": "560001", "items": [], "idempotency_key": key}
    response = client.post("/logistics/swift/shipments", json={**body, **extra})
    assert response.status_code == 200, response.text
    return response.json()["awb"]


def test_otp_delivery_is_reported_verified(receiver: Receiver) -> None:
    with courier_app(receiver) as client:
        with_otp = book(client, "s1", otp_required=True)
        without = book(client, "s2")
        assert len(receiver.wait_for(2 * len(HAPPY))) == 2 * len(HAPPY)
        entries = client.get("/__ledger__").json()
    posts = {(post["awb"], post["status"]): post for post in receiver.posts}
    assert {status for _, status in posts} == set(HAPPY)
    assert posts[(with_otp, "delivered")]["otp_verified"] is True
    assert "otp_verified" not in posts[(without, "delivered")]
    # Only the delivered update carries it: the OTP is collected at the doorstep.
    assert all(
        "otp_verified" not in post for (_, status), post in posts.items() if status != "delivered"
    )
    assert receiver.bad_signatures == 0
    verified = [(e["awb"], e["status"]) for e in entries["tracking"] if e.get("otp_verified")]
    assert verified == [(with_otp, "delivered")]
    booked = {s["awb"]: s["otp_required"] for s in entries["shipments"]}
    assert booked == {with_otp: True, without: False}


def test_otp_required_must_be_a_boolean(client: TestClient) -> None:
    body = {"reference": "R", "pincode": "560001", "items": [], "idempotency_key": "s1"}
    response = client.post("/logistics/swift/shipments", json={**body, "otp_required": "yes"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert ledger(client)["shipments"] == []
