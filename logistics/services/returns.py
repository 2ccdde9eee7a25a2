"""Reverse pickups: a courier collects units a customer sends back.

Stateless here: the caller (orders' returns) keeps the booking, and gives every request
the same idempotency key for the same return, so however often it is sent (two ops
clicking, a retry after a timeout) the partner books one pickup."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from core.http import ExternalRejected
from logistics import partners


class PickupRefused(Exception):
    """The partner answered no (4xx: it does not serve the pincode, or the request is
    wrong): asking again will not help."""

    def __init__(self, partner: str, detail: object) -> None:
        super().__init__(f"{partner} refused the reverse pickup: {detail!r}")
        self.partner = partner


@dataclass(frozen=True)
class PickupItem:
    sku: str
    quantity: int


@dataclass(frozen=True)
class ReversePickup:
    partner: str
    awb: str
    pickup_date: datetime.date | None


def reverse_pickup_book(
    *, partner: str, reference: str, pincode: str, items: list[PickupItem], idempotency_key: str
) -> ReversePickup:
    """Book a reverse pickup of `items` at `pincode` with `partner`, once per
    `idempotency_key`. Call it outside a transaction (it waits on the partner).

    Raises `PickupRefused` when the partner refuses; an `ExternalError` when its answer
    is unknown or it is unreachable (ask again later with the same key)."""
    try:
        booking = partners.book_return(
            partner=partner,
            reference=reference,
            pincode=pincode,
            items=[{"sku": i.sku, "quantity": i.quantity} for i in items],
            idempotency_key=idempotency_key,
        )
    except ExternalRejected as exc:
        raise PickupRefused(partner, exc.body) from exc
    return ReversePickup(partner=partner, awb=booking.awb, pickup_date=booking.pickup_date)
