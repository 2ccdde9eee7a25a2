"""Adapters for the payment gateways' HTTP API (the simulator speaks the same)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings

from core.http import post_json


def _url(gateway: str, path: str) -> str:
    return f"{settings.PAYMENTS_BASE_URL}/{gateway}/{path}"


def target(gateway: str) -> str:
    return f"gateways/{gateway}"


@dataclass(frozen=True)
class ChargeResult:
    reference: str
    captured: bool
    decline_code: str
    raw: dict[str, Any]


def create_intent(*, gateway: str, amount: Decimal, currency: str, idempotency_key: str) -> str:
    body = post_json(
        target(gateway),
        _url(gateway, "intents"),
        {"amount": str(amount), "currency": currency, "idempotency_key": idempotency_key},
    )
    return str(body["id"])


def charge(
    *,
    gateway: str,
    intent_id: str,
    amount: Decimal,
    currency: str,
    token: str,
    idempotency_key: str,
) -> ChargeResult:
    payload = {
        "amount": str(amount),
        "currency": currency,
        "token": token,
        "idempotency_key": idempotency_key,
        # Our reference for this charge; the gateway's notices (webhooks) may name it.
        "reference": idempotency_key,
    }
    if intent_id:
        payload["intent_id"] = intent_id
    body = post_json(target(gateway), _url(gateway, "charges"), payload)
    return ChargeResult(
        reference=str(body.get("id", "")),
        captured=body.get("status") == "captured",
        decline_code=str(body.get("decline_code") or ""),
        raw=body,
    )


def refund(*, gateway: str, charge_id: str, amount: Decimal, idempotency_key: str) -> str:
    body = post_json(
        target(gateway),
        _url(gateway, "refunds"),
        {
            "charge_id": charge_id,
            "amount": str(amount),
            "idempotency_key": idempotency_key,
            "reference": idempotency_key,
        },
    )
    return str(body.get("id", ""))


def payout(*, gateway: str, vpa: str, amount: Decimal, idempotency_key: str) -> str:
    """Pay money out to a customer's UPI id (refunds of cash collected on delivery)."""
    body = post_json(
        target(gateway),
        _url(gateway, "payouts"),
        {
            "vpa": vpa,
            "amount": str(amount),
            "idempotency_key": idempotency_key,
            "reference": idempotency_key,
        },
    )
    return str(body.get("id", ""))
