"""Adapters for the logistics partners' HTTP API (the simulator speaks the same)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from core.http import post_json


def target(partner: str) -> str:
    return f"logistics/{partner}"


@dataclass(frozen=True)
class Booking:
    awb: str
    eta: datetime.date | None


def book(
    *, partner: str, reference: str, pincode: str, items: list[dict[str, Any]], idempotency_key: str
) -> Booking:
    body = post_json(
        target(partner),
        f"{settings.LOGISTICS_BASE_URL}/{partner}/shipments",
        {
            "reference": reference,
            "pincode": pincode,
            "items": items,
            "idempotency_key": idempotency_key,
        },
    )
    eta = body.get("eta")
    try:
        eta_date = datetime.date.fromisoformat(str(eta)[:10]) if eta else None
    except ValueError:
        eta_date = None
    return Booking(awb=str(body["awb"]), eta=eta_date)


def cancel(*, partner: str, awb: str) -> None:
    post_json(
        target(partner), f"{settings.LOGISTICS_BASE_URL}/{partner}/shipments/{awb}/cancel", {}
    )
