"""Tests of the external-world simulator, in process (TestClient) and as a real subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from simulator.app import CourierConfig, create_app, parse_latency_spec

# requirements pin httpx, which starlette's TestClient still supports but warns about (it prefers
# httpx2); the warning is raised once, at import.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

PROJECT_ROOT = Path(__file__).resolve().parents[2]


# Couriers off: these tests book shipments without a COT to post tracking updates to.
NO_COURIERS = CourierConfig(enabled=False)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app("", NO_COURIERS)) as test_client:
        yield test_client


def charge(client: TestClient, key: str, card: str = "tok_ok", gw: str = "alpha", **extra: Any):
    body = {"amount": "60.00", "currency": "INR", "token": card, "idempotency_key": key}
    return client.post(f"/gateways/{gw}/charges", json={**body, **extra})


def ledger(client: TestClient) -> dict[str, list[dict[str, Any]]]:
    return client.get("/__ledger__").json()


def control(client: TestClient, **settings: Any) -> dict[str, Any]:
    response = client.post("/__control__", json=settings)
    assert response.status_code == 200, response.text
    return response.json()


# --------------------------------------------------------------------------- payments


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_intent_is_idempotent_per_gateway(client: TestClient) -> None:
    body = {"amount": "60.00", "currency": "INR", "idempotency_key": "order:1:intent"}
    first = client.post("/gateways/alpha/intents", json=body)
    again = client.post("/gateways/alpha/intents", json=body)
    other = client.post("/gateways/beta/intents", json=body)
    assert first.status_code == 200
    assert re.fullmatch(r"pi_[0-9a-f]+", first.json()["id"])
    assert again.json()["id"] == first.json()["id"]
    assert other.json()["id"] != first.json()["id"]
    intents = ledger(client)["intents"]
    assert [(i["target"], i["id"]) for i in intents] == [
        ("gateways/alpha", first.json()["id"]),
        ("gateways/beta", other.json()["id"]),
    ]


@pytest.mark.parametrize(
    ("token", "status", "decline_code"),
    [
        ("tok_ok", "captured", None),
        ("tok_decline", "declined", "card_declined"),
        ("tok_insufficient", "declined", "insufficient_funds"),
        ("tok_unknown", "declined", "invalid_token"),
    ],
)
def test_charge_tokens(client: TestClient, token: str, status: str, decline_code: str) -> None:
    response = charge(client, "k1", card=token)
    assert response.status_code == 200
    body = response.json()
    assert re.fullmatch(r"ch_[0-9a-f]+", body["id"])
    assert (body["status"], body["decline_code"]) == (status, decline_code)
    [entry] = ledger(client)["charges"]
    assert entry["status"] == status
    assert entry["idempotency_key"] == "k1"
    assert entry["amount"] == "60.00"


def test_same_idempotency_key_never_captures_twice(client: TestClient) -> None:
    answers = [charge(client, "order:1:charge:1").json() for _ in range(3)]
    assert answers[0]["status"] == "captured"
    assert answers[1] == answers[0] == answers[2]
    charges = ledger(client)["charges"]
    assert len(charges) == 1
    assert charges[0]["id"] == answers[0]["id"]


def test_idempotency_keys_are_per_gateway(client: TestClient) -> None:
    alpha = charge(client, "same-key", gw="alpha").json()
    beta = charge(client, "same-key", gw="beta").json()
    assert alpha["id"] != beta["id"]
    assert [c["target"] for c in ledger(client)["charges"]] == ["gateways/alpha", "gateways/beta"]


def test_concurrent_duplicates_share_one_charge() -> None:
    app = create_app("charges=20", NO_COURIERS)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
            body = {"amount": "99.50", "currency": "INR", "token": "tok_ok", "idempotency_key": "k"}
            calls = [http.post("/gateways/alpha/charges", json=body) for _ in range(50)]
            return await asyncio.gather(*calls)

    responses = asyncio.run(run())
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(app.state.world.ledger["charges"]) == 1


def test_charge_against_an_intent(client: TestClient) -> None:
    intent = client.post(
        "/gateways/alpha/intents",
        json={"amount": "60.00", "currency": "INR", "idempotency_key": "i1"},
    ).json()
    declined = charge(client, "c1", card="tok_decline", intent_id=intent["id"]).json()
    captured = charge(client, "c2", intent_id=intent["id"]).json()
    assert (declined["status"], captured["status"]) == ("declined", "captured")
    again = charge(client, "c3", intent_id=intent["id"])
    assert again.status_code == 409
    assert again.json()["error"] == "intent_already_captured"
    assert charge(client, "c4", gw="beta", intent_id=intent["id"]).status_code == 404
    assert ledger(client)["charges"][1]["intent_id"] == intent["id"]


def test_refunds(client: TestClient) -> None:
    charge_id = charge(client, "c1").json()["id"]

    def refund(amount: str, key: str, gw: str = "alpha", charge_id: str = charge_id):
        body = {"charge_id": charge_id, "amount": amount, "idempotency_key": key}
        return client.post(f"/gateways/{gw}/refunds", json=body)

    first = refund("20.00", "r1")
    assert first.status_code == 200
    assert re.fullmatch(r"re_[0-9a-f]+", first.json()["id"])
    assert first.json()["status"] == "refunded"
    assert refund("20.00", "r1").json() == first.json()  # replay, not a second refund
    over = refund("40.01", "r2")
    assert over.status_code == 409
    assert over.json()["error"] == "amount_exceeds_refundable"
    assert refund("40.00", "r2").status_code == 200  # the key was not burnt by the 409
    assert refund("0.01", "r3").status_code == 409
    assert refund("1.00", "r4", gw="beta").status_code == 404
    assert refund("1.00", "r5", charge_id="ch_nope").status_code == 404
    assert [r["amount"] for r in ledger(client)["refunds"]] == ["20.00", "40.00"]


def test_refund_of_a_declined_charge_is_refused(client: TestClient) -> None:
    charge_id = charge(client, "c1", card="tok_decline").json()["id"]
    body = {"charge_id": charge_id, "amount": "1.00", "idempotency_key": "r1"}
    assert client.post("/gateways/alpha/refunds", json=body).status_code == 409


# --------------------------------------------------------------------------- logistics


def book(client: TestClient, key: str, pincode: str = "560001", partner: str = "swift"):
    body = {
        "reference": "COT-00000001",
        "pincode": pincode,
        "items": [{"sku": "PARA-500", "quantity": 2}],
        "idempotency_key": key,
    }
    return client.post(f"/logistics/{partner}/shipments", json=body)


def test_shipment_booking_is_idempotent(client: TestClient) -> None:
    first = book(client, "s1")
    assert first.status_code == 200
    assert re.fullmatch(r"SWIFT-\d{10}", first.json()["awb"])
    assert first.json()["eta"] == (datetime.now(UTC).date() + timedelta(days=2)).isoformat()
    assert book(client, "s1").json() == first.json()
    assert re.fullmatch(r"ROADIE-\d{10}", book(client, "s1", partner="roadie").json()["awb"])
    shipments = ledger(client)["shipments"]
    assert len(shipments) == 2
    assert shipments[0]["reference"] == "COT-00000001"
    assert shipments[0]["items"] == [{"sku": "PARA-500", "quantity": 2}]


def test_unserviceable_prefixes(client: TestClient) -> None:
    state = control(client, target="logistics/swift", unserviceable_prefixes=["7", "81"])
    assert state["unserviceable_prefixes"] == ["7", "81"]
    refused = book(client, "s1", pincode="781001")
    assert refused.status_code == 422
    assert refused.json()["error"] == "unserviceable"
    assert book(client, "s2", pincode="811001").status_code == 422
    assert book(client, "s3", pincode="560001").status_code == 200
    assert book(client, "s4", pincode="781001", partner="roadie").status_code == 200
    assert len(ledger(client)["shipments"]) == 2


def test_cancel_shipment(client: TestClient) -> None:
    awb = book(client, "s1").json()["awb"]
    first = client.post(f"/logistics/swift/shipments/{awb}/cancel")
    again = client.post(f"/logistics/swift/shipments/{awb}/cancel", json={"idempotency_key": "x"})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() == {"awb": awb, "status": "cancelled"}
    assert client.post(f"/logistics/roadie/shipments/{awb}/cancel").status_code == 404
    assert client.post("/logistics/swift/shipments/SWIFT-0/cancel").status_code == 404
    assert [c["awb"] for c in ledger(client)["cancellations"]] == [awb]


# --------------------------------------------------------------------------- notifications


def test_notifications(client: TestClient) -> None:
    sms = client.post("/notify/sms", json={"to": "+919800000001", "text": "Order confirmed"})
    assert sms.status_code == 200
    assert re.fullmatch(r"msg_[0-9a-f]+", sms.json()["id"])
    assert sms.json()["status"] == "sent"
    email = {"to": "a@example.com", "subject": "Order", "text": "Hi", "idempotency_key": "n1"}
    first = client.post("/notify/email", json=email)
    assert client.post("/notify/email", json=email).json() == first.json()
    assert (
        client.post("/notify/email", json={"to": "a@example.com", "text": "Hi"}).status_code == 400
    )
    messages = ledger(client)["messages"]
    assert [(m["channel"], m["target"]) for m in messages] == [
        ("sms", "notify"),
        ("email", "notify"),
    ]


# --------------------------------------------------------------------------- control, errors


def test_down_answers_503_and_does_nothing(client: TestClient) -> None:
    state = control(client, target="gateways/alpha", down=True)
    assert state == {
        "target": "gateways/alpha",
        "latency_ms": None,
        "error_rate": 0.0,
        "down": True,
        "unserviceable_prefixes": [],
        "kind_latency_ms": {},
    }
    response = charge(client, "c1")
    assert response.status_code == 503
    assert response.json()["error"] == "down"
    assert client.post("/gateways/alpha/intents", content=b"not json").status_code == 503
    assert charge(client, "c1", gw="beta").status_code == 200
    control(client, target="gateways/alpha", down=False)
    assert charge(client, "c1").json()["status"] == "captured"
    assert len(ledger(client)["charges"]) == 2


def test_error_rate_one_answers_500_without_side_effect(client: TestClient) -> None:
    control(client, target="logistics/swift", error_rate=1.0)
    assert book(client, "s1").status_code == 500
    assert ledger(client)["shipments"] == []
    control(client, target="logistics/swift", error_rate=0)
    assert book(client, "s1").status_code == 200
    assert len(ledger(client)["shipments"]) == 1


def test_control_changes_only_given_keys(client: TestClient) -> None:
    control(client, target="notify", latency_ms=5, error_rate=0.25)
    state = control(client, target="notify", down=False)
    assert (state["latency_ms"], state["error_rate"]) == (5.0, 0.25)
    everything = client.get("/__control__").json()
    assert set(everything["targets"]) == {
        "gateways/alpha",
        "gateways/beta",
        "logistics/swift",
        "logistics/roadie",
        "notify",
    }
    assert everything["targets"]["notify"]["error_rate"] == 0.25
    assert client.post("/__control__", json={"target": "gateways/gamma"}).status_code == 400
    bad = {"target": "notify", "error_rate": 2}
    assert client.post("/__control__", json=bad).status_code == 400
    bad = {"target": "notify", "colour": "red"}
    assert client.post("/__control__", json=bad).status_code == 400


def test_requests_per_target_are_counted_whatever_the_answer(client: TestClient) -> None:
    control(client, target="gateways/alpha", error_rate=1.0)
    assert charge(client, "c1").status_code == 500
    control(client, target="gateways/alpha", error_rate=0.0, down=True)
    assert charge(client, "c1").status_code == 503
    assert charge(client, "c1", gw="beta").status_code == 200
    requests = client.get("/__control__").json()["requests"]
    assert (requests["gateways/alpha"], requests["gateways/beta"], requests["notify"]) == (2, 1, 0)
    client.post("/__reset__")
    assert client.get("/__control__").json()["requests"]["gateways/alpha"] == 0


def test_reset_clears_ledger_idempotency_and_controls(client: TestClient) -> None:
    first = charge(client, "c1").json()
    control(client, target="gateways/alpha", down=True, latency_ms=1)
    assert client.post("/__reset__").status_code == 200
    assert all(entries == [] for entries in ledger(client).values())
    assert client.get("/__control__").json()["targets"]["gateways/alpha"]["down"] is False
    second = charge(client, "c1").json()
    assert second["status"] == "captured"
    assert second["id"] != first["id"]


def test_latency_applies() -> None:
    assert parse_latency_spec("intents=100, charges=500,notify=0") == {
        "intents": 100.0,
        "charges": 500.0,
        "notify": 0.0,
    }
    for bad in ("bogus=1", "charges", "charges=-1", "charges=x"):
        with pytest.raises(ValueError):
            parse_latency_spec(bad)
    with TestClient(create_app("charges=30", NO_COURIERS)) as client:
        started = time.monotonic()
        assert charge(client, "c1").status_code == 200
        assert time.monotonic() - started >= 0.03
        control(client, target="gateways/beta", latency_ms=40)
        started = time.monotonic()
        assert charge(client, "c1", gw="beta").status_code == 200
        assert time.monotonic() - started >= 0.04
        control(client, target="gateways/beta", kind_latency_ms={"charges": 60})
        started = time.monotonic()
        assert charge(client, "c2", gw="beta").status_code == 200
        assert time.monotonic() - started >= 0.06
        bad = {"target": "gateways/beta", "kind_latency_ms": {"bogus": 1}}
        assert client.post("/__control__", json=bad).status_code == 400


def test_unknown_targets_are_404(client: TestClient) -> None:
    assert charge(client, "c1", gw="gamma").status_code == 404
    assert book(client, "s1", partner="slowpoke").status_code == 404
    response = client.post("/nowhere")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[1, 2]",
        b'{"currency": "INR", "token": "tok_ok", "idempotency_key": "k"}',
        b'{"amount": "-5.00", "currency": "INR", "token": "tok_ok", "idempotency_key": "k"}',
        b'{"amount": "1.001", "currency": "INR", "token": "tok_ok", "idempotency_key": "k"}',
        b'{"amount": "5.00", "currency": "INR", "token": "tok_ok"}',
    ],
)
def test_bad_requests_are_400(client: TestClient, content: bytes) -> None:
    response = client.post("/gateways/alpha/charges", content=content)
    assert response.status_code == 400
    assert "error" in response.json()
    assert ledger(client)["charges"] == []


def test_ledger_reference_filter(client: TestClient) -> None:
    book(client, "s1")
    charge(client, "c1", reference="COT-00000001")
    charge(client, "c2", reference="COT-00000002")
    filtered = client.get("/__ledger__", params={"reference": "COT-00000001"}).json()
    assert len(filtered["shipments"]) == 1
    assert [c["idempotency_key"] for c in filtered["charges"]] == ["c1"]


# --------------------------------------------------------------------------- real process


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "SIM_LATENCY_MS": "charges=10", "SIM_COURIER": "off"}
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", str(port)], cwd=PROJECT_ROOT, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, "the simulator exited"
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_real_process_serves_http(live_url: str) -> None:
    assert httpx.get(f"{live_url}/healthz").json() == {"status": "ok"}
    state = httpx.get(f"{live_url}/__control__").json()
    assert state["kind_latency_ms"] == {"charges": 10.0}
    assert state["targets"]["logistics/swift"]["courier"] is None  # SIM_COURIER=off


def test_real_process_client_timeout_leaves_a_captured_charge(live_url: str) -> None:
    """The gateway captures, the client times out; the retry returns the same charge."""
    httpx.post(f"{live_url}/__reset__")
    httpx.post(f"{live_url}/__control__", json={"target": "gateways/alpha", "latency_ms": 1000})
    body = {"amount": "60.00", "currency": "INR", "token": "tok_ok", "idempotency_key": "o:1:c:1"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{live_url}/gateways/alpha/charges", json=body, timeout=0.2)
    [captured] = httpx.get(f"{live_url}/__ledger__").json()["charges"]
    assert captured["status"] == "captured"
    httpx.post(f"{live_url}/__control__", json={"target": "gateways/alpha", "latency_ms": None})
    retry = httpx.post(f"{live_url}/gateways/alpha/charges", json=body).json()
    assert retry["id"] == captured["id"]
    assert len(httpx.get(f"{live_url}/__ledger__").json()["charges"]) == 1


def test_real_process_serves_hundreds_of_concurrent_calls(live_url: str) -> None:
    httpx.post(f"{live_url}/__reset__")
    httpx.post(f"{live_url}/__control__", json={"target": "logistics/swift", "latency_ms": 200})

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=300)
        async with httpx.AsyncClient(base_url=live_url, limits=limits, timeout=30) as http:
            calls = [
                http.post(
                    "/logistics/swift/shipments",
                    json={
                        "reference": f"R{i}",
                        "pincode": "560001",
                        "items": [],
                        "idempotency_key": f"s{i % 150}",
                    },
                )
                for i in range(300)
            ]
            return await asyncio.gather(*calls)

    responses = asyncio.run(run())
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["awb"] for r in responses}) == 150
    assert len(httpx.get(f"{live_url}/__ledger__").json()["shipments"]) == 150
    httpx.post(f"{live_url}/__reset__")
