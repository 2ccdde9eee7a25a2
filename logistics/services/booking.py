"""Shipment booking with partner failover, and cancellation. Idempotent by construction:
every booking request carries a key written to the database (as a `ShipmentAttempt`)
before the call.

At most one booking per shipment, across partners (the rule payments follows for
charges): an attempt moves to the next partner only when it surely booked nothing, that
is, the partner refused it (4xx: it does not serve the pincode) or its first and only send
never reached the partner (refused connection, 503, open breaker). A timeout or a 5xx
leaves the outcome unknown: then only the same partner with the same key is asked again,
however long it takes, because it may have booked. Attempts follow `core.attempts`
(written claimed, claimed under the shipment's row lock, leased while sent).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from core.attempts import AttemptInProgress, Attempts
from core.http import ExternalUnavailable
from logistics import partners
from logistics.enums import NOT_BOOKED, AttemptStatus, ShipmentStatus
from logistics.models import Shipment, ShipmentAttempt, ShipmentItem

FULFILMENT_UNAVAILABLE = "fulfilment_unavailable"


class BookingInProgress(AttemptInProgress):
    """Another process is sending this booking request right now: try again later."""


@dataclass(frozen=True)
class ParcelItem:
    sku: str
    batch: str
    quantity: int
    # The caller says which items are handed over only against the customer's OTP
    # (prescription drugs, schedule H and H1): one such item makes the whole parcel so.
    otp_required: bool = False


@dataclass(frozen=True)
class BookOutcome:
    ok: bool
    reason: str | None = None
    shipments: tuple[Shipment, ...] = ()


# Booking requests, `order:<id>:shipment:<centre>:<n>`: sent only while the shipment is
# not cancelled; a partner that refused a shipment is not asked again for it.
BOOKINGS: Attempts[Shipment, ShipmentAttempt] = Attempts(
    ShipmentAttempt,
    parent="shipment",
    peer="partner",
    ready={"status": ShipmentStatus.BOOKED},
    nowhere=NOT_BOOKED,
    refused=AttemptStatus.REFUSED,
    target=partners.target,
    in_progress=BookingInProgress,
)


def _delivery_otp() -> str:
    """Six random digits (from `secrets`: nobody may guess the next one)."""
    return f"{secrets.randbelow(10**6):06d}"


def _shipment_for(
    order_id: uuid.UUID, center: str, items: list[ParcelItem], request: dict[str, Any]
) -> tuple[Shipment, ShipmentAttempt | None]:
    """The order's shipment from `center`. The call that creates it also writes its items,
    its delivery OTP when it needs one, and its first booking attempt, claimed for sending
    by this process, all or nothing: nobody else sees the shipment without them, so this
    needs no lock and no look at earlier attempts. Returns the attempt only then."""
    key = f"order:{order_id}:shipment:{center}"
    try:
        with transaction.atomic():
            shipment = Shipment.objects.create(
                order_id=order_id,
                center=center,
                partner="",
                idempotency_key=key,
                delivery_otp=_delivery_otp() if request.get("otp_required") else "",
            )
            ShipmentItem.objects.bulk_create(
                [
                    ShipmentItem(shipment=shipment, sku=i.sku, batch=i.batch, quantity=i.quantity)
                    for i in items
                ]
            )
            attempt = None
            if settings.COT_LOGISTICS_PARTNERS:
                attempt = BOOKINGS.write(
                    shipment,
                    peer=settings.COT_LOGISTICS_PARTNERS[0],
                    key=f"{key}:1",
                    request=request,
                )
        return shipment, attempt
    except IntegrityError:
        return Shipment.objects.get(order_id=order_id, center=center), None


def shipment_book(
    *, order_id: uuid.UUID, reference: str, pincode: str, parcels: dict[str, list[ParcelItem]]
) -> BookOutcome:
    """Book one shipment per centre with the first partner (in `COT_LOGISTICS_PARTNERS`
    order) that serves the pincode. A parcel holding an item that needs proof of delivery
    (`ParcelItem.otp_required`) gets a `delivery_otp`, and its booking asks the partner to
    hand it over only against it (`otp_required`).

    Returns a failed outcome when every partner refused (none serves the pincode); raises
    an `ExternalError` when a partner is down or a booking's outcome is unknown (the
    caller retries later; the same keys go to the same partners)."""
    booked: list[Shipment] = []
    for center, items in sorted(parcels.items()):
        request = {
            "reference": reference,
            "pincode": pincode,
            "items": [{"sku": i.sku, "batch": i.batch, "quantity": i.quantity} for i in items],
        }
        if any(i.otp_required for i in items):
            request["otp_required"] = True
        shipment, claimed = _shipment_for(order_id, center, items, request)
        if not shipment.awb and not _book_one(shipment, request, claimed):
            return BookOutcome(ok=False, reason=FULFILMENT_UNAVAILABLE)
        booked.append(shipment)
    return BookOutcome(ok=True, shipments=tuple(booked))


def _book_one(shipment: Shipment, request: dict[str, Any], claimed: ShipmentAttempt | None) -> bool:
    """Book `shipment`, starting with `claimed` (a new attempt this process holds) if
    given; False when every partner refused it."""
    tried: set[str] = set()
    if claimed is not None:
        attempt, sends = claimed, claimed.sends
    else:
        attempt, sends = _current_attempt(shipment, request, tried)
    while attempt is not None:
        tried.add(attempt.partner)
        if _send(shipment, attempt, sends):
            return True
        attempt, sends = _current_attempt(shipment, request, tried)
    refused = set(
        shipment.attempts.filter(status=AttemptStatus.REFUSED).values_list("partner", flat=True)
    )
    if refused >= set(settings.COT_LOGISTICS_PARTNERS):
        return False
    shipment.refresh_from_db(fields=["status"])
    if shipment.status == ShipmentStatus.CANCELLED:
        raise BookingInProgress("logistics", f"shipment {shipment.pk} was cancelled meanwhile")
    raise ExternalUnavailable("logistics", "no partner could take the booking now")


def _current_attempt(
    shipment: Shipment, request: dict[str, Any], tried: set[str]
) -> tuple[ShipmentAttempt | None, int | None]:
    """The attempt to (re)send, as `Attempts.current` says; none once the shipment was
    cancelled (compensation ran) or booked."""
    with transaction.atomic():
        # Locked: compensation looks at the attempts under the same lock, so an attempt is
        # either seen (and settled) by it or never created; every writer of attempts takes
        # it, so the next key is free.
        locked = Shipment.objects.select_for_update().get(pk=shipment.pk)
        return BOOKINGS.current(
            shipment,
            peers=settings.COT_LOGISTICS_PARTNERS,
            tried=tried,
            key=shipment.idempotency_key,
            wanted=locked.status == ShipmentStatus.BOOKED and not locked.awb,
            request=request,
        )


def _send(shipment: Shipment, attempt: ShipmentAttempt, sends: int | None = None) -> bool:
    """Send one booking request and record what it did (in `shipment` too): True when the
    shipment is booked (by this call or another), False when the attempt surely booked
    nothing (the caller may try the next partner); raises as `Attempts.send` says."""

    def book() -> partners.Booking:
        return partners.book(
            partner=attempt.partner, idempotency_key=attempt.idempotency_key, **attempt.request
        )

    def booked(booking: partners.Booking) -> tuple[str, dict[str, Any]]:
        shipment.partner, shipment.awb, shipment.eta = attempt.partner, booking.awb, booking.eta
        shipment.save(update_fields=["partner", "awb", "eta", "updated_at"])
        eta = booking.eta.isoformat() if booking.eta else None
        return AttemptStatus.BOOKED, {"awb": booking.awb, "eta": eta}

    return BOOKINGS.send(shipment, attempt, book, booked, sends=sends)


def shipment_cancel(*, order_id: uuid.UUID) -> int:
    """Cancel every booked shipment of the order at its partner. Returns how many changed.

    Idempotent. A booking request whose outcome is unknown is settled first by sending its
    key again (the partner never books twice for one key): a booking it made is cancelled,
    never left behind. Raises on outside trouble; the caller retries."""
    changed = 0
    for shipment in Shipment.objects.filter(order_id=order_id, status=ShipmentStatus.BOOKED):
        changed += shipment_cancel_one(shipment)
    return changed


def shipment_cancel_one(shipment: Shipment) -> int:
    """Cancel one booked shipment at its partner (see `shipment_cancel`); 1 when it moved
    to cancelled, else 0. Raises on outside trouble; the caller retries."""
    with transaction.atomic():
        shipment = Shipment.objects.select_for_update().get(pk=shipment.pk)
        if shipment.status != ShipmentStatus.BOOKED:
            return 0
        pending = BOOKINGS.abandon(shipment)
        if not shipment.awb and pending is None:
            # Nothing was ever booked, and no new attempt can start (it needs this lock).
            return Shipment.objects.filter(pk=shipment.pk).update(status=ShipmentStatus.CANCELLED)
    if pending is not None and not shipment.awb:
        _send(shipment, pending)  # raises while the outcome stays unknown
    if shipment.awb:
        partners.cancel(partner=shipment.partner, awb=shipment.awb)
    # Not cancelled when a booking landed meanwhile: the booking step, finding its order
    # ended, runs compensation again and that booking is cancelled then.
    return Shipment.objects.filter(
        pk=shipment.pk, status=ShipmentStatus.BOOKED, awb=shipment.awb
    ).update(status=ShipmentStatus.CANCELLED)
