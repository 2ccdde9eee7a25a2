"""The external world as one small HTTP service: payment gateways, couriers, SMS/e-mail.

It stands in for real peers, so it imports nothing from the Django project. All state lives
in memory in one process and one event loop; every handler does its checks and its side
effect without awaiting in between, so concurrent requests cannot interleave inside them.

Every operation takes effect when its request arrives (after the down / error-rate checks)
and is answered after the configured latency. A client that times out mid-latency has
therefore left the operation done behind it (a captured charge, a booked shipment) and must
retry with the same idempotency key, which returns the stored first answer and never does
the operation twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

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
KINDS = ("intents", "charges", "refunds", "shipments", "cancellations", "notify")
LEDGER_SECTIONS = (
    "charges",
    "refunds",
    "intents",
    "shipments",
    "cancellations",
    "messages",
)
DEFAULT_LATENCY_ENV = "SIM_LATENCY_MS"
CENT = Decimal("0.01")

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

    def __init__(self, kind_latency_ms: dict[str, float]) -> None:
        self.kind_latency_ms = dict(kind_latency_ms)
        self.reset()

    def reset(self) -> None:
        self.controls: dict[str, Control] = {t: Control() for t in TARGETS}
        self.ledger: dict[str, list[Json]] = {s: [] for s in LEDGER_SECTIONS}
        # (target, operation, idempotency key) -> the stored first answer
        self.replies: dict[tuple[str, str, str], Outcome] = {}
        self.intents: dict[tuple[str, str], Json] = {}  # (target, id) -> intent
        self.charges: dict[tuple[str, str], Json] = {}  # (target, id) -> charge
        self.shipments: dict[tuple[str, str], Json] = {}  # (target, awb) -> shipment
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

    # -- logistics partners

    def book_shipment(self, target: str, body: Json) -> Outcome:
        reference = _require_str(body, "reference")
        pincode = body.get("pincode")
        if isinstance(pincode, int) and not isinstance(pincode, bool):
            pincode = str(pincode)
        if not isinstance(pincode, str) or not pincode.strip():
            raise ApiError(400, "invalid_request", "pincode: a non-empty string is required")
        items = body.get("items")
        if not isinstance(items, list):
            raise ApiError(400, "invalid_request", "items: a list is required")
        key = _require_str(body, "idempotency_key")
        partner = target.split("/", 1)[1]

        def act() -> Outcome:
            if any(pincode.startswith(p) for p in self.controls[target].unserviceable_prefixes):
                raise ApiError(422, "unserviceable", f"{partner} does not serve {pincode}")
            awb = self._new_awb(target, partner)
            eta = (datetime.now(UTC).date() + timedelta(days=2)).isoformat()
            self.shipments[(target, awb)] = {"reference": reference, "status": "booked"}
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
                },
            )
            return 200, {"awb": awb, "eta": eta}

        return self.once(target, "shipments", key, act)

    def _new_awb(self, target: str, partner: str) -> str:
        while True:
            awb = f"{partner.upper()}-{secrets.randbelow(10**10):010d}"
            if (target, awb) not in self.shipments:
                return awb

    def cancel_shipment(self, target: str, awb: str, body: Json) -> Outcome:
        shipment = self.shipments.get((target, awb))
        if shipment is None:
            raise ApiError(404, "unknown_shipment", f"no shipment {awb} on {target}")
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
        control = self.controls[target]
        for name, value in changes.items():
            setattr(control, name, value)
        return self.control_state(target)

    def control_state(self, target: str) -> Json:
        return {"target": target, **asdict(self.controls[target])}


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


def create_app(latency_spec: str | None = None) -> Starlette:
    """Build the simulator app; `latency_spec` defaults to the `SIM_LATENCY_MS` variable."""
    if latency_spec is None:
        latency_spec = os.environ.get(DEFAULT_LATENCY_ENV, "")
    world = World(parse_latency_spec(latency_spec))

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
            "/notify/sms",
            operation("notify", lambda t, r, b: world.send_message("sms", b)),
            methods=post,
        ),
        Route(
            "/notify/email",
            operation("notify", lambda t, r, b: world.send_message("email", b)),
            methods=post,
        ),
        Route("/__ledger__", ledger, methods=["GET"]),
        Route("/__control__", control, methods=["GET", "POST"]),
        Route("/__reset__", reset, methods=post),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.world = world
    return app
