"""The external world as one small HTTP service: payment gateways, couriers, SMS/e-mail.

It stands in for real peers, so it imports nothing from the Django project. All state lives
in memory in one process and one event loop; every handler does its checks and its side
effect without awaiting in between, so concurrent requests cannot interleave inside them.

Every operation takes effect when its request arrives (after the down / error-rate checks)
and is answered after the configured latency. A client that times out mid-latency has
therefore left the operation done behind it (a captured charge, a booked shipment) and must
retry with the same idempotency key, which returns the stored first answer and never does
the operation twice.

Each logistics partner is also a courier: a new booking starts an asyncio task that walks the
shipment through its tracking statuses and posts each one, signed, to COT's logistics webhook
(see `Courier` and `World.drive`). Every task is kept in `World.courier_tasks`, so a reset, a
cancellation before pickup or the app's shutdown can stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import random
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

GATEWAYS = ("alpha", "beta")
PARTNERS = ("swift", "roadie")
TARGETS = tuple(
    [f"gateways/{gw}" for gw in GATEWAYS] + [f"logistics/{p}" for p in PARTNERS] + ["notify"]
)
KINDS = (
    "intents",
    "charges",
    "refunds",
    "payouts",
    "shipments",
    "cancellations",
    "amendments",
    "returns",
    "notify",
)
LEDGER_SECTIONS = (
    "charges",
    "refunds",
    "payouts",
    "intents",
    "shipments",
    "cancellations",
    "amendments",
    "returns",
    "messages",
    "tracking",
)
DEFAULT_LATENCY_ENV = "SIM_LATENCY_MS"
# Why a delivery fails, as COT's tracking webhook takes it.
FAIL_REASONS = ("customer_unavailable", "address_not_found", "refused", "other")
COURIER_ENV = "SIM_COURIER"  # "off": every courier starts switched off
COURIER_MS_ENV = "SIM_COURIER_MS"  # the start-up time of every courier stage
ATTEMPTS_ENV = "SIM_DELIVERY_ATTEMPTS"
WEBHOOK_URL_ENV = "COT_WEBHOOK_URL"
WEBHOOK_SECRET_ENV = "LOGISTICS_WEBHOOK_SECRET"  # noqa: S105 (a variable's name)
# The app's own development default, so `make run` works without configuration.
DEFAULT_WEBHOOK_SECRET = "dev-only-logistics-secret"  # noqa: S105
WEBHOOK_PATH = "/api/v1/webhooks/logistics/"
CENT = Decimal("0.01")
# A UPI id as payers type it, `name@bank`: the bank handle is letters (and digits) only.
VPA_PATTERN = re.compile(r"[A-Za-z0-9._-]{2,256}@[A-Za-z][A-Za-z0-9]{1,63}")

# token -> (status, decline_code)
TOKENS: dict[str, tuple[str, str | None]] = {
    "tok_ok": ("captured", None),
    "tok_decline": ("declined", "card_declined"),
    "tok_insufficient": ("declined", "insufficient_funds"),
}

Json = dict[str, Any]
Outcome = tuple[int, Json]
Endpoint = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    """An answer other than success: HTTP status and a JSON body `{"error", "detail"}`."""

    def __init__(self, status: int, error: str, detail: str = "") -> None:
        super().__init__(detail or error)
        self.status = status
        self.body: Json = {"error": error}
        if detail:
            self.body["detail"] = detail


def parse_latency_spec(spec: str) -> dict[str, float]:
    """Parse `"intents=100,charges=500"` into `{"intents": 100.0, "charges": 500.0}` (ms)."""
    latencies: dict[str, float] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        kind, sep, value = part.partition("=")
        kind = kind.strip()
        if not sep or kind not in KINDS:
            raise ValueError(f"bad latency entry {part!r}; expected KIND=MS, KIND in {KINDS}")
        try:
            ms = float(value)
        except ValueError:
            raise ValueError(f"bad latency value in {part!r}") from None
        if ms < 0:
            raise ValueError(f"negative latency in {part!r}")
        latencies[kind] = ms
    return latencies


@dataclass
class Control:
    """Run-time behaviour of one target, changed through `POST /__control__`."""

    latency_ms: float | None = None  # None: use the start-up latency of each kind of call
    error_rate: float = 0.0
    down: bool = False
    unserviceable_prefixes: list[str] = field(default_factory=list)
    # Per kind of call ("charges": 4000), before latency_ms: lets a test slow down one kind
    # of call only, e.g. charges past the client's timeout while intents stay fast.
    kind_latency_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Courier:
    """Run-time behaviour of one partner's courier, changed through `"courier"` in control.

    Read afresh at every stage, so a change (or `null`, which stops it) reaches shipments
    already on their way.
    """

    pickup_ms: float
    transit_ms: float
    delivery_ms: float
    fail_rate: float = 0.0
    fail_reason: str = "customer_unavailable"
    rto_after_failures: bool = True
    # Where this courier posts its updates; None: the start-up `COT_WEBHOOK_URL`. Tests
    # whose API server starts after the simulator point a courier at it.
    webhook_url: str | None = None


@dataclass(frozen=True)
class CourierConfig:
    """Start-up settings of the couriers; `POST /__reset__` goes back to them."""

    enabled: bool = True
    stage_ms: float = 2000.0
    attempts: int = 3  # delivery attempts before the shipment fails for good
    webhook_url: str = "http://127.0.0.1:8000"
    secret: str = DEFAULT_WEBHOOK_SECRET
    tries: int = 4  # posts of one update before giving it up
    backoff_s: float = 0.1  # before the first retry; doubles after each
    timeout_s: float = 5.0

    @classmethod
    def from_env(cls) -> CourierConfig:
        """`SIM_COURIER`, `SIM_COURIER_MS`, `SIM_DELIVERY_ATTEMPTS`, `COT_WEBHOOK_URL` (default
        the API on `PORT`) and `LOGISTICS_WEBHOOK_SECRET`; ValueError on a bad value."""
        env = os.environ
        port = env.get("PORT") or "8000"
        try:
            stage_ms = float(env.get(COURIER_MS_ENV) or cls.stage_ms)
            attempts = int(env.get(ATTEMPTS_ENV) or cls.attempts)
        except ValueError:
            raise ValueError(f"{COURIER_MS_ENV} and {ATTEMPTS_ENV} must be numbers") from None
        if stage_ms < 0 or attempts < 1:
            raise ValueError(f"{COURIER_MS_ENV} must be >= 0 and {ATTEMPTS_ENV} >= 1")
        return cls(
            enabled=env.get(COURIER_ENV, "on").strip().lower() not in ("off", "0", "false", "no"),
            stage_ms=stage_ms,
            attempts=attempts,
            webhook_url=env.get(WEBHOOK_URL_ENV) or f"http://127.0.0.1:{port}",
            secret=env.get(WEBHOOK_SECRET_ENV) or DEFAULT_WEBHOOK_SECRET,
        )

    def default_courier(self) -> Courier | None:
        if not self.enabled:
            return None
        return Courier(self.stage_ms, self.stage_ms, self.stage_ms)


def _parse_courier(value: object, current: Courier) -> Courier:
    """A `"courier"` control merged into `current`; ApiError 400 on anything malformed."""
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_request", "courier: an object, or null")
    names = {f.name for f in fields(Courier)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise ApiError(400, "invalid_request", f"courier: unknown keys: {', '.join(unknown)}")
    changes: Json = {}
    for name, item in value.items():
        number = not isinstance(item, bool) and isinstance(item, (int, float))
        if name.endswith("_ms"):
            if not number or item < 0:
                raise ApiError(400, "invalid_request", f"courier.{name}: a number >= 0")
            changes[name] = float(item)
        elif name == "fail_rate":
            if not number or not 0 <= item <= 1:
                raise ApiError(400, "invalid_request", "courier.fail_rate: a number in [0, 1]")
            changes[name] = float(item)
        elif name == "fail_reason":
            if item not in FAIL_REASONS:
                raise ApiError(
                    400, "invalid_request", f"courier.fail_reason: one of {', '.join(FAIL_REASONS)}"
                )
            changes[name] = item
        elif name == "webhook_url":
            if item is not None and (
                not isinstance(item, str) or not item.startswith(("http://", "https://"))
            ):
                raise ApiError(
                    400, "invalid_request", "courier.webhook_url: an http(s) URL, or null"
                )
            changes[name] = item
        elif not isinstance(item, bool):
            raise ApiError(400, "invalid_request", f"courier.{name}: true or false")
        else:
            changes[name] = item
    return replace(current, **changes)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


# ----------------------------------------------------------------------------- body parsing


def _require_str(body: Json, name: str, *, max_len: int = 255) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "invalid_request", f"{name}: a non-empty string is required")
    if len(value) > max_len:
        raise ApiError(400, "invalid_request", f"{name}: at most {max_len} characters")
    return value


def _optional_str(body: Json, name: str) -> str | None:
    if body.get(name) is None:
        return None
    return _require_str(body, name)


def _require_amount(body: Json, name: str = "amount") -> Decimal:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ApiError(400, "invalid_request", f"{name}: a decimal amount is required")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ApiError(400, "invalid_request", f"{name}: not a decimal amount") from None
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(CENT):
        raise ApiError(400, "invalid_request", f"{name}: must be positive, two decimals at most")
    return amount.quantize(CENT)


def _optional_bool(body: Json, name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise ApiError(400, "invalid_request", f"{name}: true or false")
    return value


def _require_pincode(body: Json) -> str:
    pincode = body.get("pincode")
    if isinstance(pincode, int) and not isinstance(pincode, bool):
        pincode = str(pincode)
    if not isinstance(pincode, str) or not pincode.strip():
        raise ApiError(400, "invalid_request", "pincode: a non-empty string is required")
    return pincode


def _require_return_items(body: Json) -> list[Json]:
    """What the courier collects: at least one `{"sku", "quantity"}`, quantity a whole
    number above zero (a reverse pickup of nothing would send a courier for nothing)."""
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise ApiError(400, "invalid_request", "items: a non-empty list is required")
    for n, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != {"sku", "quantity"}:
            raise ApiError(400, "invalid_request", f'items[{n}]: {{"sku", "quantity"}}')
        _require_str(item, "sku", max_len=64)
        quantity = item["quantity"]
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise ApiError(400, "invalid_request", f"items[{n}].quantity: an integer >= 1")
    return [{"sku": item["sku"], "quantity": item["quantity"]} for item in items]


def _money(amount: Decimal) -> str:
    return str(amount.quantize(CENT))


async def _json_body(request: Request, *, allow_empty: bool = False) -> Json:
    raw = await request.body()
    if allow_empty and not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    return body


# ----------------------------------------------------------------------------- the world


class World:
    """In-memory state: ledger, idempotency memory, charges, shipments and controls."""

    def __init__(
        self, kind_latency_ms: dict[str, float], courier_config: CourierConfig | None = None
    ) -> None:
        self.kind_latency_ms = dict(kind_latency_ms)
        self.courier_config = courier_config or CourierConfig(enabled=False)
        self.courier_tasks: dict[tuple[str, str], asyncio.Task[None]] = {}  # (target, awb)
        self.http: httpx.AsyncClient | None = None
        self.http_loop: asyncio.AbstractEventLoop | None = None
        self.reset()

    def reset(self) -> None:
        self.stop_couriers()
        self.controls: dict[str, Control] = {t: Control() for t in TARGETS}
        # Logistics targets only: None is a courier switched off.
        self.couriers: dict[str, Courier | None] = {
            f"logistics/{p}": self.courier_config.default_courier() for p in PARTNERS
        }
        self.ledger: dict[str, list[Json]] = {s: [] for s in LEDGER_SECTIONS}
        # (target, operation, idempotency key) -> the stored first answer
        self.replies: dict[tuple[str, str, str], Outcome] = {}
        self.intents: dict[tuple[str, str], Json] = {}  # (target, id) -> intent
        self.charges: dict[tuple[str, str], Json] = {}  # (target, id) -> charge
        self.shipments: dict[tuple[str, str], Json] = {}  # (target, awb) -> shipment
        self.returns: dict[tuple[str, str], Json] = {}  # (target, awb) -> reverse pickup
        # Requests that reached each target, answered or not (500s and 503s too): the
        # chaos tests bound a breaker's probes with it.
        self.requests: dict[str, int] = dict.fromkeys(TARGETS, 0)

    def latency_s(self, target: str, kind: str) -> float:
        control = self.controls[target]
        if kind in control.kind_latency_ms:
            return control.kind_latency_ms[kind] / 1000.0
        override = control.latency_ms
        ms = override if override is not None else self.kind_latency_ms.get(kind, 0.0)
        return ms / 1000.0

    def record(self, section: str, target: str, entry: Json) -> None:
        self.ledger[section].append({"target": target, **entry, "at": _now()})

    def once(self, target: str, op: str, key: str | None, act: Callable[[], Outcome]) -> Outcome:
        """Run `act` once per idempotency key; later calls get the stored first answer.

        Only successful answers and declines are stored; a 4xx that did nothing is not, so
        the client may retry after fixing the cause.
        """
        if key is None:
            return act()
        slot = (target, op, key)
        stored = self.replies.get(slot)
        if stored is not None:
            return stored
        outcome = act()
        if outcome[0] < 400:
            self.replies[slot] = outcome
        return outcome

    # -- payment gateways

    def create_intent(self, target: str, body: Json) -> Outcome:
        amount = _require_amount(body)
        currency = _require_str(body, "currency", max_len=8)
        key = _require_str(body, "idempotency_key")
        reference = _optional_str(body, "reference")

        def act() -> Outcome:
            intent_id = _new_id("pi")
            intent = {"id": intent_id, "amount": _money(amount), "currency": currency}
            self.intents[(target, intent_id)] = {**intent, "captured_by": None}
            self.record(
                "intents",
                target,
                {"idempotency_key": key, "reference": reference, **intent},
            )
            return 200, {
                "id": intent_id,
                "amount": _money(amount),
                "currency": currency,
            }

        return self.once(target, "intents", key, act)

    def charge(self, target: str, body: Json) -> Outcome:
        intent_id = _optional_str(body, "intent_id")
        amount = _require_amount(body)
        currency = _require_str(body, "currency", max_len=8)
        token = _require_str(body, "token")
        key = _require_str(body, "idempotency_key")
        reference = _optional_str(body, "reference")

        def act() -> Outcome:
            intent = None
            if intent_id is not None:
                intent = self.intents.get((target, intent_id))
                if intent is None:
                    raise ApiError(404, "unknown_intent", f"no intent {intent_id} on {target}")
                if intent["captured_by"] is not None:
                    raise ApiError(
                        409,
                        "intent_already_captured",
                        f"intent {intent_id} was captured by {intent['captured_by']}",
                    )
            status, decline_code = TOKENS.get(token, ("declined", "invalid_token"))
            charge_id = _new_id("ch")
            charge = {
                "id": charge_id,
                "status": status,
                "decline_code": decline_code,
                "amount": _money(amount),
                "currency": currency,
            }
            if intent is not None and status == "captured":
                intent["captured_by"] = charge_id
            self.charges[(target, charge_id)] = {**charge, "refunded": Decimal(0)}
            self.record(
                "charges",
                target,
                {
                    "idempotency_key": key,
                    "reference": reference,
                    "intent_id": intent_id,
                    "token": token,
                    **charge,
                },
            )
            return 200, charge

        return self.once(target, "charges", key, act)

    def refund(self, target: str, body: Json) -> Outcome:
        charge_id = _require_str(body, "charge_id")
        amount = _require_amount(body)
        key = _require_str(body, "idempotency_key")
        reference = _optional_str(body, "reference")

        def act() -> Outcome:
            charge = self.charges.get((target, charge_id))
            if charge is None:
                raise ApiError(404, "unknown_charge", f"no charge {charge_id} on {target}")
            if charge["status"] != "captured":
                raise ApiError(409, "charge_not_captured", f"charge {charge_id} is not captured")
            remaining = Decimal(charge["amount"]) - charge["refunded"]
            if amount > remaining:
                raise ApiError(
                    409,
                    "amount_exceeds_refundable",
                    f"{_money(amount)} asked, {_money(remaining)} refundable",
                )
            charge["refunded"] += amount
            refund_id = _new_id("re")
            answer = {
                "id": refund_id,
                "status": "refunded",
                "charge_id": charge_id,
                "amount": _money(amount),
            }
            self.record(
                "refunds",
                target,
                {"idempotency_key": key, "reference": reference, **answer},
            )
            return 200, answer

        return self.once(target, "refunds", key, act)

    def payout(self, target: str, body: Json) -> Outcome:
        """Send money to a customer's UPI id: how a cash-on-delivery order, which has no
        charge to refund, is paid back."""
        vpa = _require_str(body, "vpa")
        if not VPA_PATTERN.fullmatch(vpa):
            raise ApiError(400, "invalid_request", "vpa: a UPI id, name@bank")
        amount = _require_amount(body)
        key = _require_str(body, "idempotency_key")
        reference = _optional_str(body, "reference")

        def act() -> Outcome:
            answer = {
                "id": _new_id("po"),
                "status": "paid",
                "vpa": vpa,
                "amount": _money(amount),
            }
            self.record(
                "payouts",
                target,
                {"idempotency_key": key, "reference": reference, **answer},
            )
            return 200, answer

        return self.once(target, "payouts", key, act)

    # -- logistics partners

    def book_shipment(self, target: str, body: Json) -> Outcome:
        reference = _require_str(body, "reference")
        pincode = _require_pincode(body)
        items = body.get("items")
        if not isinstance(items, list):
            raise ApiError(400, "invalid_request", "items: a list is required")
        key = _require_str(body, "idempotency_key")
        # Proof of delivery: the courier hands over only against the customer's OTP.
        otp_required = _optional_bool(body, "otp_required")
        partner = target.split("/", 1)[1]

        def act() -> Outcome:
            if any(pincode.startswith(p) for p in self.controls[target].unserviceable_prefixes):
                raise ApiError(422, "unserviceable", f"{partner} does not serve {pincode}")
            awb = self._new_awb(target, partner)
            eta = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()
            self.shipments[(target, awb)] = {
                "reference": reference,
                "status": "booked",
                "otp_required": otp_required,
            }
            self.start_courier(target, awb)
            self.record(
                "shipments",
                target,
                {
                    "idempotency_key": key,
                    "id": awb,
                    "awb": awb,
                    "eta": eta,
                    "reference": reference,
                    "pincode": pincode,
                    "items": items,
                    "otp_required": otp_required,
                },
            )
            return 200, {"awb": awb, "eta": eta}

        return self.once(target, "shipments", key, act)

    def book_return(self, target: str, body: Json) -> Outcome:
        """Book a reverse pickup: the courier collects `items` from the customer at `pincode`.

        Not driven by the courier loop: COT's tracking webhook knows forward shipments only.
        """
        reference = _require_str(body, "reference")
        pincode = _require_pincode(body)
        items = _require_return_items(body)
        key = _require_str(body, "idempotency_key")
        partner = target.split("/", 1)[1]

        def act() -> Outcome:
            if any(pincode.startswith(p) for p in self.controls[target].unserviceable_prefixes):
                raise ApiError(422, "unserviceable", f"{partner} does not serve {pincode}")
            awb = self._new_awb(target, partner, prefix="R")
            pickup_date = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
            self.returns[(target, awb)] = {"reference": reference, "status": "booked"}
            answer = {"awb": awb, "status": "booked", "pickup_date": pickup_date}
            self.record(
                "returns",
                target,
                {
                    "idempotency_key": key,
                    "id": awb,
                    **answer,
                    "reference": reference,
                    "pincode": pincode,
                    "items": items,
                },
            )
            return 200, answer

        return self.once(target, "returns", key, act)

    def _new_awb(self, target: str, partner: str, *, prefix: str = "") -> str:
        """An AWB unused by the partner's shipments and reverse pickups alike; `prefix`
        ("R" for a reverse pickup) goes before the digits."""
        while True:
            awb = f"{partner.upper()}-{prefix}{secrets.randbelow(10**10):010d}"
            if (target, awb) not in self.shipments and (target, awb) not in self.returns:
                return awb

    def cancel_shipment(self, target: str, awb: str, body: Json) -> Outcome:
        shipment = self.shipments.get((target, awb))
        if shipment is None:
            raise ApiError(404, "unknown_shipment", f"no shipment {awb} on {target}")
        if shipment["status"] == "booked":  # not picked up yet: the courier never comes
            task = self.courier_tasks.pop((target, awb), None)
            if task is not None:
                task.cancel()
        if shipment["status"] != "cancelled":
            shipment["status"] = "cancelled"
            self.record(
                "cancellations",
                target,
                {
                    "idempotency_key": body.get("idempotency_key"),
                    "id": awb,
                    "awb": awb,
                    "reference": shipment["reference"],
                    "status": "cancelled",
                },
            )
        return 200, {"awb": awb, "status": "cancelled"}

    def amend_shipment(self, target: str, body: Json) -> Outcome:
        """Change what a booked parcel holds before the courier picks it up: `items` is
        its whole new content. A parcel picked up (or cancelled) can no longer change."""
        awb = _require_str(body, "awb")
        items = _require_return_items(body)
        key = _require_str(body, "idempotency_key")

        def act() -> Outcome:
            shipment = self.shipments.get((target, awb))
            if shipment is None:
                raise ApiError(404, "unknown_shipment", f"no shipment {awb} on {target}")
            if shipment["status"] != "booked":
                raise ApiError(409, "not_amendable", f"shipment {awb} is {shipment['status']}")
            shipment["items"] = items
            answer = {"awb": awb, "status": "amended", "items": items}
            self.record(
                "amendments",
                target,
                {"idempotency_key": key, "id": awb, **answer, "reference": shipment["reference"]},
            )
            return 200, answer

        return self.once(target, "amendments", key, act)

    # -- couriers

    def start_courier(self, target: str, awb: str) -> None:
        """Drive a new booking in this event loop, if the partner's courier is on."""
        if self.couriers[target] is None:
            return
        key = (target, awb)
        task = asyncio.get_running_loop().create_task(self.drive(target, awb))
        self.courier_tasks[key] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self.courier_tasks.get(key) is done:
                del self.courier_tasks[key]

        task.add_done_callback(forget)

    def stop_couriers(self) -> None:
        for task in self.courier_tasks.values():
            task.cancel()
        self.courier_tasks = {}

    async def drive(self, target: str, awb: str) -> None:
        """booked -> picked_up -> in_transit -> out_for_delivery -> delivered, or
        delivery_failed and another attempt, up to the configured attempts, then
        returning -> returned (or nothing more, without `rto_after_failures`). A cancellation
        before pickup cancels this task; after pickup the parcel is on its way and it goes on.

        The outcome of an attempt comes `delivery_ms` after its out_for_delivery, so every
        status is visible for a while. Each stage waits for the previous update's post to
        end, so COT receives them in order.
        """
        for stage, status in (("pickup_ms", "picked_up"), ("transit_ms", "in_transit")):
            if not await self._after(target, stage):
                return
            await self._post_status(target, awb, status)
        attempt = 1
        while True:
            if not await self._after(target, "delivery_ms"):
                return
            await self._post_status(target, awb, "out_for_delivery", attempt=attempt)
            if not await self._after(target, "delivery_ms"):
                return
            courier = self.couriers[target]
            if courier is None:
                return
            if random.random() >= courier.fail_rate:
                await self._post_status(target, awb, "delivered")
                return
            reason = courier.fail_reason
            await self._post_status(target, awb, "delivery_failed", attempt=attempt, reason=reason)
            if attempt >= self.courier_config.attempts:
                break
            attempt += 1
        courier = self.couriers[target]
        if courier is None or not courier.rto_after_failures:
            return
        await self._post_status(target, awb, "returning")
        if await self._after(target, "transit_ms"):
            await self._post_status(target, awb, "returned")

    async def _after(self, target: str, stage: str) -> bool:
        """Sleep the stage's current time; False when the courier is (or got) switched off."""
        courier = self.couriers[target]
        if courier is None:
            return False
        await asyncio.sleep(getattr(courier, stage) / 1000.0)
        return self.couriers[target] is not None

    async def _post_status(
        self,
        target: str,
        awb: str,
        status: str,
        *,
        attempt: int | None = None,
        reason: str | None = None,
    ) -> None:
        """Post one signed update, retrying connection errors and non-2xx answers a few times
        with a doubling backoff, then give it up (the courier moves on regardless)."""
        shipment = self.shipments[(target, awb)]
        shipment["status"] = status  # before any await: a cancel from now on is too late
        body: Json = {"awb": awb, "status": status, "at": _now()}
        if attempt is not None:
            body["attempt"] = attempt
        if reason is not None:
            body["reason"] = reason
        if status == "delivered" and shipment["otp_required"]:
            # The courier handed the parcel over only against the customer's OTP.
            body["otp_verified"] = True
        raw = json.dumps(body).encode()
        config = self.courier_config
        digest = hmac.new(config.secret.encode(), raw, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-COT-Signature": f"sha256={digest}"}
        courier = self.couriers.get(target)
        base = (courier.webhook_url if courier else None) or config.webhook_url
        url = base.rstrip("/") + WEBHOOK_PATH
        entry = {"awb": awb, "partner": target.split("/", 1)[1], "reference": shipment["reference"]}
        entry.update({"status": status, "attempt": attempt, "reason": reason})
        if "otp_verified" in body:
            entry["otp_verified"] = body["otp_verified"]
        for n in range(config.tries):
            if n:
                await asyncio.sleep(config.backoff_s * 2 ** (n - 1))
            answer: int | str
            try:
                response = await self._client().post(
                    url, content=raw, headers=headers, timeout=config.timeout_s
                )
                answer = response.status_code
            except httpx.HTTPError:
                answer = "error"
            self.record("tracking", target, {**entry, "answer": answer})
            if isinstance(answer, int) and 200 <= answer < 300:
                return

    def _client(self) -> httpx.AsyncClient:
        """One pooled client per event loop (a TestClient may run the app in several)."""
        loop = asyncio.get_running_loop()
        if self.http is None or self.http_loop is not loop:
            self.http = httpx.AsyncClient()
            self.http_loop = loop
        return self.http

    async def aclose(self) -> None:
        """Stop the couriers and close the webhook client: the app is shutting down."""
        self.stop_couriers()
        if self.http is not None and self.http_loop is asyncio.get_running_loop():
            await self.http.aclose()
        self.http = self.http_loop = None

    # -- SMS and e-mail

    def send_message(self, channel: str, body: Json) -> Outcome:
        to = _require_str(body, "to")
        subject = _require_str(body, "subject", max_len=998) if channel == "email" else None
        text = _require_str(body, "text", max_len=100_000)
        key = _optional_str(body, "idempotency_key")
        reference = _optional_str(body, "reference")

        def act() -> Outcome:
            answer = {"id": _new_id("msg"), "status": "sent"}
            entry = {"idempotency_key": key, "reference": reference, "channel": channel}
            entry.update({"to": to, "subject": subject, "text": text, **answer})
            self.record("messages", "notify", entry)
            return 200, answer

        return self.once("notify", channel, key, act)

    # -- control

    def set_control(self, body: Json) -> Json:
        target = body.get("target")
        if target not in self.controls:
            raise ApiError(400, "invalid_request", f"target: one of {', '.join(TARGETS)}")
        allowed = {
            "target",
            "latency_ms",
            "error_rate",
            "down",
            "unserviceable_prefixes",
            "kind_latency_ms",
        }
        if target in self.couriers:
            allowed.add("courier")
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ApiError(400, "invalid_request", f"unknown keys: {', '.join(unknown)}")
        changes: Json = {}
        if "latency_ms" in body:
            value = body["latency_ms"]
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
            ):
                raise ApiError(400, "invalid_request", "latency_ms: a number >= 0, or null")
            changes["latency_ms"] = None if value is None else float(value)
        if "error_rate" in body:
            value = body["error_rate"]
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 <= value <= 1
            ):
                raise ApiError(400, "invalid_request", "error_rate: a number in [0, 1]")
            changes["error_rate"] = float(value)
        if "down" in body:
            if not isinstance(body["down"], bool):
                raise ApiError(400, "invalid_request", "down: true or false")
            changes["down"] = body["down"]
        if "unserviceable_prefixes" in body:
            value = body["unserviceable_prefixes"]
            if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
                raise ApiError(400, "invalid_request", "unserviceable_prefixes: list of strings")
            changes["unserviceable_prefixes"] = list(value)
        if "kind_latency_ms" in body:
            value = body["kind_latency_ms"]
            if not isinstance(value, dict) or not all(
                kind in KINDS
                and not isinstance(ms, bool)
                and isinstance(ms, (int, float))
                and ms >= 0
                for kind, ms in value.items()
            ):
                raise ApiError(
                    400, "invalid_request", f"kind_latency_ms: {{KIND: ms}}, KIND in {KINDS}"
                )
            changes["kind_latency_ms"] = {kind: float(ms) for kind, ms in value.items()}
        courier_changed = "courier" in body
        courier = None
        if courier_changed and body["courier"] is not None:
            # Switching a courier back on starts from the start-up settings.
            current = self.couriers[target] or Courier(*[self.courier_config.stage_ms] * 3)
            courier = _parse_courier(body["courier"], current)
        if courier_changed:
            self.couriers[target] = courier
        control = self.controls[target]
        for name, value in changes.items():
            setattr(control, name, value)
        return self.control_state(target)

    def control_state(self, target: str) -> Json:
        state = {"target": target, **asdict(self.controls[target])}
        if target in self.couriers:
            courier = self.couriers[target]
            state["courier"] = None if courier is None else asdict(courier)
        return state


# ----------------------------------------------------------------------------- HTTP layer


def _target(request: Request) -> str:
    """The target named by the path, or 404."""
    params = request.path_params
    if "gw" in params:
        if params["gw"] not in GATEWAYS:
            raise ApiError(404, "unknown_gateway", f"no gateway {params['gw']!r}")
        return f"gateways/{params['gw']}"
    if "partner" in params:
        if params["partner"] not in PARTNERS:
            raise ApiError(404, "unknown_partner", f"no logistics partner {params['partner']!r}")
        return f"logistics/{params['partner']}"
    return "notify"


def create_app(
    latency_spec: str | None = None, courier_config: CourierConfig | None = None
) -> Starlette:
    """Build the simulator app; `latency_spec` defaults to the `SIM_LATENCY_MS` variable and
    `courier_config` to `CourierConfig.from_env()`."""
    if latency_spec is None:
        latency_spec = os.environ.get(DEFAULT_LATENCY_ENV, "")
    if courier_config is None:
        courier_config = CourierConfig.from_env()
    world = World(parse_latency_spec(latency_spec), courier_config)

    def operation(kind: str, act: Callable[[str, Request, Json], Outcome]) -> Endpoint:
        """An endpoint: target and control checks, the body, the act, then the latency.

        Unknown targets (404), `down` (503), injected errors (500) and malformed requests
        (400) are answered at once and do nothing; everything else after the latency.
        """

        async def endpoint(request: Request) -> Response:
            try:
                target = _target(request)
                world.requests[target] += 1
                control = world.controls[target]
                if control.down:
                    raise ApiError(503, "down", f"{target} is down")
                if control.error_rate and random.random() < control.error_rate:
                    raise ApiError(500, "injected_error", f"{target} failed (error_rate)")
                body = await _json_body(request, allow_empty=kind == "cancellations")
            except ApiError as exc:
                return JSONResponse(exc.body, exc.status)
            try:
                status, answer = act(target, request, body)
            except ApiError as exc:
                if exc.status == 400:  # a malformed request is refused at once
                    return JSONResponse(exc.body, exc.status)
                status, answer = exc.status, exc.body  # a business answer takes its time
            await asyncio.sleep(world.latency_s(target, kind))
            return JSONResponse(answer, status)

        return endpoint

    async def ledger(request: Request) -> Response:
        reference = request.query_params.get("reference")
        return JSONResponse(
            {
                section: [
                    entry
                    for entry in entries
                    if reference is None or entry.get("reference") == reference
                ]
                for section, entries in world.ledger.items()
            }
        )

    async def control(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(
                {
                    "targets": {t: world.control_state(t) for t in TARGETS},
                    "kind_latency_ms": world.kind_latency_ms,
                    "requests": world.requests,
                }
            )
        try:
            return JSONResponse(world.set_control(await _json_body(request)))
        except ApiError as exc:
            return JSONResponse(exc.body, exc.status)

    async def reset(request: Request) -> Response:
        world.reset()
        return JSONResponse({"status": "reset"})

    async def track(request: Request) -> Response:
        """The tracking page a courier's customer opens: where the parcel is now."""
        try:
            target = _target(request)
        except ApiError as exc:
            return JSONResponse(exc.body, exc.status)
        awb = request.path_params["awb"]
        shipment = world.shipments.get((target, awb)) or world.returns.get((target, awb))
        if shipment is None:
            return JSONResponse({"error": "unknown_shipment", "detail": awb}, 404)
        partner = target.split("/", 1)[1]
        return JSONResponse({"awb": awb, "partner": partner, "status": shipment["status"]})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        name = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": name, "detail": exc.detail}, exc.status_code)

    post = ["POST"]
    routes = [
        Route(
            "/gateways/{gw}/intents",
            operation("intents", lambda t, r, b: world.create_intent(t, b)),
            methods=post,
        ),
        Route(
            "/gateways/{gw}/charges",
            operation("charges", lambda t, r, b: world.charge(t, b)),
            methods=post,
        ),
        Route(
            "/gateways/{gw}/refunds",
            operation("refunds", lambda t, r, b: world.refund(t, b)),
            methods=post,
        ),
        Route(
            "/gateways/{gw}/payouts",
            operation("payouts", lambda t, r, b: world.payout(t, b)),
            methods=post,
        ),
        Route(
            "/logistics/{partner}/shipments",
            operation("shipments", lambda t, r, b: world.book_shipment(t, b)),
            methods=post,
        ),
        Route(
            "/logistics/{partner}/shipments/{awb}/cancel",
            operation(
                "cancellations",
                lambda t, r, b: world.cancel_shipment(t, r.path_params["awb"], b),
            ),
            methods=post,
        ),
        Route(
            "/logistics/{partner}/amendments",
            operation("amendments", lambda t, r, b: world.amend_shipment(t, b)),
            methods=post,
        ),
        Route(
            "/logistics/{partner}/returns",
            operation("returns", lambda t, r, b: world.book_return(t, b)),
            methods=post,
        ),
        Route(
            "/notify/sms",
            operation("notify", lambda t, r, b: world.send_message("sms", b)),
            methods=post,
        ),
        Route(
            "/notify/email",
            operation("notify", lambda t, r, b: world.send_message("email", b)),
            methods=post,
        ),
        Route("/logistics/{partner}/track/{awb}", track, methods=["GET"]),
        Route("/__ledger__", ledger, methods=["GET"]),
        Route("/__control__", control, methods=["GET", "POST"]),
        Route("/__reset__", reset, methods=post),
        Route("/healthz", healthz, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await world.aclose()

    app = Starlette(
        routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan
    )
    app.state.world = world
    return app
