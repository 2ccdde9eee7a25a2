"""The simulator as courier: after a booking it posts signed tracking webhooks by itself.

A real HTTP receiver (a tiny Starlette app under uvicorn, on a free port) stands in for COT:
it checks every post's signature and records it, so the tests see what COT would see.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator.app import CourierConfig, create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

SECRET = "courier-test-secret"
STAGE_MS = 20
HAPPY = ["picked_up", "in_transit", "out_for_delivery", "delivered"]


class Receiver:
    """COT's logistics webhook, recorded: answers `fail_first` posts with 503, then 200."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.fail_first = 0
        self.lock = threading.Lock()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        app = Starlette(
            routes=[Route("/api/v1/webhooks/logistics/", self.webhook, methods=["POST"])]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def webhook(self, request: Request) -> JSONResponse:
        raw = await request.body()
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        with self.lock:
            if not hmac.compare_digest(request.headers.get("X-COT-Signature", ""), expected):
                self.bad_signatures += 1
                return JSONResponse({"detail": "bad signature"}, 401)
            if self.fail_first > 0:
                self.fail_first -= 1
                return JSONResponse({"detail": "try later"}, 503)
            self.posts.append(json.loads(raw))
        return JSONResponse({"result": "applied"})

    def statuses(self) -> list[str]:
        with self.lock:
            return [post["status"] for post in self.posts]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.statuses()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.statuses()


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


def courier_app(receiver: Receiver, **overrides: Any) -> TestClient:
    config = CourierConfig(
        **{
            "stage_ms": STAGE_MS,
            "attempts": 3,
            "webhook_url": receiver.url,
            "secret": SECRET,
            "backoff_s": 0.01,
            **overrides,
        }
    )
    return TestClient(create_app("", config))


def book(client: TestClient, key: str = "s1", partner: str = "swift") -> str:
    body = {"reference": "COT-00000001", "pincode": "560001", "items": [], "idempotency_key": key}
    response = client.post(f"/logistics/{partner}/shipments", json=body)
    assert response.status_code == 200, response.text
    return response.json()["awb"]


def control(client: TestClient, **settings: Any) -> dict[str, Any]:
    response = client.post("/__control__", json={"target": "logistics/swift", **settings})
    assert response.status_code == 200, response.text
    return response.json()


def tracking(client: TestClient) -> list[dict[str, Any]]:
    return client.get("/__ledger__").json()["tracking"]


def test_a_booking_is_driven_to_delivered(receiver: Receiver) -> None:
    with courier_app(receiver) as client:
        awb = book(client)
        assert book(client) == awb  # an idempotent replay starts no second courier
        assert receiver.wait_for(4) == HAPPY
        time.sleep(STAGE_MS * 5 / 1000)
        entries = tracking(client)
    assert receiver.statuses() == HAPPY
    assert receiver.bad_signatures == 0
    assert {post["awb"] for post in receiver.posts} == {awb}
    assert all(post["at"].endswith("Z") for post in receiver.posts)
    out = receiver.posts[2]
    assert out["attempt"] == 1 and "reason" not in out
    assert set(receiver.posts[0]) == {"awb", "status", "at"}
    assert [(e["status"], e["answer"], e["partner"], e["awb"]) for e in entries] == [
        (status, 200, "swift", awb) for status in HAPPY
    ]


def test_failed_attempts_then_return_to_origin(receiver: Receiver) -> None:
    with courier_app(receiver) as client:
        control(client, courier={"fail_rate": 1, "fail_reason": "address_not_found"})
        book(client)
        attempts = ["out_for_delivery", "delivery_failed"] * 3
        expected = ["picked_up", "in_transit", *attempts, "returning", "returned"]
        assert receiver.wait_for(len(expected)) == expected
        time.sleep(STAGE_MS * 5 / 1000)
    assert receiver.statuses() == expected
    failures = [post for post in receiver.posts if post["status"] == "delivery_failed"]
    assert [(f["attempt"], f["reason"]) for f in failures] == [
        (n, "address_not_found") for n in (1, 2, 3)
    ]
    outs = [post["attempt"] for post in receiver.posts if post["status"] == "out_for_delivery"]
    assert outs == [1, 2, 3]


def test_failed_attempts_without_rto_stop(receiver: Receiver) -> None:
    with courier_app(receiver, attempts=2) as client:
        control(client, courier={"fail_rate": 1.0, "rto_after_failures": False})
        book(client)
        expected = ["picked_up", "in_transit"] + ["out_for_delivery", "delivery_failed"] * 2
        assert receiver.wait_for(len(expected)) == expected
        time.sleep(STAGE_MS * 8 / 1000)
    assert receiver.statuses() == expected
    assert receiver.posts[-1]["reason"] == "customer_unavailable"


def test_courier_null_posts_nothing(receiver: Receiver) -> None:
    with courier_app(receiver) as client:
        assert control(client, courier=None)["courier"] is None
        book(client)
        time.sleep(STAGE_MS * 15 / 1000)
        assert tracking(client) == []
        book(client, partner="roadie")  # the other partner's courier is still on
        assert receiver.wait_for(4) == HAPPY
    assert {post["awb"][:6] for post in receiver.posts} == {"ROADIE"}


def test_a_booking_cancelled_before_pickup_is_never_driven(receiver: Receiver) -> None:
    with courier_app(receiver, stage_ms=100) as client:
        awb = book(client)
        assert client.post(f"/logistics/swift/shipments/{awb}/cancel").status_code == 200
        time.sleep(0.5)
        assert tracking(client) == []
    assert receiver.posts == []


def test_reset_stops_running_couriers(receiver: Receiver) -> None:
    with courier_app(receiver, stage_ms=100) as client:
        book(client)
        assert client.post("/__reset__").status_code == 200
        time.sleep(0.5)
        assert tracking(client) == []
    assert receiver.posts == []


def test_a_failing_receiver_gets_retries(receiver: Receiver) -> None:
    receiver.fail_first = 2
    with courier_app(receiver) as client:
        book(client)
        assert receiver.wait_for(4) == HAPPY
        time.sleep(STAGE_MS * 5 / 1000)
        entries = tracking(client)
    assert [(e["status"], e["answer"]) for e in entries] == [
        ("picked_up", 503),
        ("picked_up", 503),
        ("picked_up", 200),
        ("in_transit", 200),
        ("out_for_delivery", 200),
        ("delivered", 200),
    ]


def test_an_unreachable_receiver_is_given_up_and_the_courier_goes_on(
    receiver: Receiver,
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with courier_app(receiver, webhook_url=dead, tries=3) as client:
        book(client)
        deadline = time.monotonic() + 10
        while len(tracking(client)) < 12 and time.monotonic() < deadline:
            time.sleep(0.02)
        entries = tracking(client)
    assert [(e["status"], e["answer"]) for e in entries] == [
        (status, "error") for status in HAPPY for _ in range(3)
    ]


def test_a_bad_secret_is_refused_by_the_receiver(receiver: Receiver) -> None:
    with courier_app(receiver, secret="wrong", tries=1) as client:
        book(client)
        deadline = time.monotonic() + 10
        while len(tracking(client)) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [e["answer"] for e in tracking(client)] == [401] * 4
    assert receiver.bad_signatures == 4


def test_courier_controls_merge_validate_and_reset() -> None:
    config = CourierConfig(stage_ms=1500, webhook_url="http://127.0.0.1:9")
    with TestClient(create_app("", config)) as client:
        defaults = {
            "pickup_ms": 1500.0,
            "transit_ms": 1500.0,
            "delivery_ms": 1500.0,
            "fail_rate": 0.0,
            "fail_reason": "customer_unavailable",
            "rto_after_failures": True,
            "webhook_url": None,
        }
        targets = client.get("/__control__").json()["targets"]
        assert targets["logistics/swift"]["courier"] == defaults
        assert "courier" not in targets["gateways/alpha"]
        state = control(client, courier={"pickup_ms": 5, "fail_rate": 0.5})
        state = control(client, courier={"rto_after_failures": False})
        assert state["courier"] == {
            **defaults,
            "pickup_ms": 5.0,
            "fail_rate": 0.5,
            "rto_after_failures": False,
        }
        for bad in (
            {"courier": {"pickup_ms": -1}},
            {"courier": {"transit_ms": "fast"}},
            {"courier": {"delivery_ms": True}},
            {"courier": {"fail_rate": 1.5}},
            {"courier": {"fail_reason": ""}},
            {"courier": {"rto_after_failures": "yes"}},
            {"courier": {"webhook_url": "ftp://x"}},
            {"courier": {"speed": 1}},
            {"courier": 5},
            {"courier": {"fail_rate": 0.1}, "latency_ms": -1},
        ):
            response = client.post("/__control__", json={"target": "logistics/swift", **bad})
            assert response.status_code == 400, bad
        assert control(client)["courier"]["fail_rate"] == 0.5  # nothing half-applied
        gateway = {"target": "gateways/alpha", "courier": None}
        assert client.post("/__control__", json=gateway).status_code == 400
        assert control(client, courier=None)["courier"] is None
        # Back on: from the start-up settings plus the given keys.
        assert control(client, courier={"fail_rate": 0.2})["courier"] == {
            **defaults,
            "fail_rate": 0.2,
        }
        client.post("/__reset__")
        assert client.get("/__control__").json()["targets"]["logistics/swift"]["courier"] == (
            defaults
        )


def test_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SIM_COURIER",
        "SIM_COURIER_MS",
        "SIM_DELIVERY_ATTEMPTS",
        "COT_WEBHOOK_URL",
        "LOGISTICS_WEBHOOK_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PORT", "8123")
    config = CourierConfig.from_env()
    assert (config.enabled, config.stage_ms, config.attempts) == (True, 2000.0, 3)
    assert config.webhook_url == "http://127.0.0.1:8123"
    assert config.secret == "dev-only-logistics-secret"
    monkeypatch.setenv("SIM_COURIER", "off")
    monkeypatch.setenv("SIM_COURIER_MS", "50")
    monkeypatch.setenv("SIM_DELIVERY_ATTEMPTS", "2")
    monkeypatch.setenv("COT_WEBHOOK_URL", "http://cot.example")
    monkeypatch.setenv("LOGISTICS_WEBHOOK_SECRET", "s3")
    config = CourierConfig.from_env()
    assert (config.enabled, config.stage_ms, config.attempts) == (False, 50.0, 2)
    assert (config.webhook_url, config.secret) == ("http://cot.example", "s3")
    with TestClient(create_app("")) as client:
        assert client.get("/__control__").json()["targets"]["logistics/roadie"]["courier"] is None
    monkeypatch.setenv("SIM_DELIVERY_ATTEMPTS", "zero")
    with pytest.raises(ValueError, match="SIM_DELIVERY_ATTEMPTS"):
        CourierConfig.from_env()


def test_the_tracking_page_shows_where_the_parcel_is() -> None:
    with TestClient(create_app("", CourierConfig(enabled=False))) as client:
        booked = client.post(
            "/logistics/swift/shipments",
            json={"reference": "COT-1", "pincode": "560001", "items": [], "idempotency_key": "k1"},
        )
        awb = booked.json()["awb"]
        page = client.get(f"/logistics/swift/track/{awb}")
        assert page.json() == {"awb": awb, "partner": "swift", "status": "booked"}
        assert client.get("/logistics/swift/track/NOPE").status_code == 404
        assert client.get(f"/logistics/nobody/track/{awb}").status_code == 404
        bad_reason = {"target": "logistics/swift", "courier": {"fail_reason": "lost"}}
        assert client.post("/__control__", json=bad_reason).status_code == 400
