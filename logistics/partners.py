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
    *,
    partner: str,
    reference: str,
    pincode: str,
    items: list[dict[str, Any]],
    idempotency_key: str,
    otp_required: bool = False,
) -> Booking:
    request: dict[str, Any] = {
        "reference": reference,
        "pincode": pincode,
        "items": items,
        "idempotency_key": idempotency_key,
    }
    if otp_required:
        # Proof of delivery: the courier hands the parcel over only against the OTP the
        # customer was given.
        request["otp_required"] = True
    body = post_json(target(partner), f"{settings.LOGISTICS_BASE_URL}/{partner}/shipments", request)
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


def amend(*, partner: str, awb: str, items: list[dict[str, Any]], idempotency_key: str) -> None:
    """Tell the partner what a booked parcel holds now (`items`: `{"sku", "quantity"}`, the
    whole new content, not a change), before pickup. Once per key: a retry gets the first
    answer."""
    post_json(
        target(partner),
        f"{settings.LOGISTICS_BASE_URL}/{partner}/amendments",
        {"awb": awb, "items": items, "idempotency_key": idempotency_key},
    )


@dataclass(frozen=True)
class ReturnBooking:
    awb: str
    pickup_date: datetime.date | None


def book_return(
    *,
    partner: str,
    reference: str,
    pincode: str,
    items: list[dict[str, Any]],
    idempotency_key: str,
) -> ReturnBooking:
    """Book a reverse pickup: the courier collects `items` (`{"sku", "quantity"}`) from
    the customer. The partner books once per key, so a retry gets the first answer."""
    body = post_json(
        target(partner),
        f"{settings.LOGISTICS_BASE_URL}/{partner}/returns",
        {
            "reference": reference,
            "pincode": pincode,
            "items": items,
            "idempotency_key": idempotency_key,
        },
    )
    pickup = body.get("pickup_date")
    try:
        pickup_date = datetime.date.fromisoformat(str(pickup)[:10]) if pickup else None
    except ValueError:
        pickup_date = None
    return ReturnBooking(awb=str(body["awb"]), pickup_date=pickup_date)
