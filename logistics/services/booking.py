"""Shipment booking with partner failover, and cancellation. Idempotent by construction:
every booking request carries a key written to the database (as a `ShipmentAttempt`)
before the call.

At most one booking per shipment, across partners (the rule payments follows for
charges): an attempt moves to the next partner only when it surely booked nothing, that
is, the partner refused it (4xx: it does not serve the pincode) or its first and only send
never reached the partner (refused connection, 503, open breaker). A timeout or a 5xx
leaves the outcome unknown: then only the same partner with the same key is asked again,
however long it takes, because it may have booked.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Field, Q
from django.utils import timezone

from core.http import ExternalError, ExternalRejected, ExternalUnavailable
from core.prepared import (
    Bind,
    Prepared,
    PreparedInsert,
    PreparedInsertWithChildren,
    PreparedUpdates,
)
from logistics import partners
from logistics.enums import NOT_BOOKED, UNRESOLVED, AttemptStatus, ShipmentStatus
from logistics.models import Shipment, ShipmentAttempt, ShipmentItem

FULFILMENT_UNAVAILABLE = "fulfilment_unavailable"
# A sender holds its attempt this much longer than its call can take.
LEASE_MARGIN_SECONDS = 5


class BookingInProgress(ExternalError):
    """Another process is sending this booking request right now: try again later."""


@dataclass(frozen=True)
class ParcelItem:
    sku: str
    batch: str
    quantity: int


@dataclass(frozen=True)
class BookOutcome:
    ok: bool
    reason: str | None = None
    shipments: tuple[Shipment, ...] = ()


def _shipment_field(name: str) -> Field:
    return Shipment._meta.get_field(name)


def _attempt_field(name: str) -> Field:
    return ShipmentAttempt._meta.get_field(name)


# The booking's outcome, written for every order: compiled once per process (core.prepared).
_ATTEMPT_BOOKED = Prepared(
    lambda: ShipmentAttempt.objects.filter(pk=Bind("pk", _attempt_field("id"))),
    update=lambda: {
        "status": AttemptStatus.BOOKED,
        "response": Bind("response", _attempt_field("response")),
        "lease_until": None,
    },
)
_SHIPMENT_BOOKED = Prepared(
    lambda: Shipment.objects.filter(pk=Bind("pk", _shipment_field("id"))),
    update=lambda: {
        name: Bind(name, _shipment_field(name)) for name in ("partner", "awb", "eta", "updated_at")
    },
)

# The attempt's outcome and the shipment's booking: both or neither, in one round trip.
_ATTEMPT_AND_SHIPMENT_BOOKED = PreparedUpdates(_ATTEMPT_BOOKED, _SHIPMENT_BOOKED)
_ATTEMPT_INSERT = PreparedInsert(ShipmentAttempt)
# A new shipment, its items and its first booking attempt: one statement on PostgreSQL.
_SHIPMENT_ITEMS_ATTEMPT = PreparedInsertWithChildren(
    PreparedInsert(Shipment),
    (PreparedInsert(ShipmentItem), "shipment"),
    (_ATTEMPT_INSERT, "shipment"),
)


def _lease_until(now: datetime) -> datetime:
    call_seconds = settings.COT_HTTP_CONNECT_TIMEOUT + settings.COT_HTTP_READ_TIMEOUT
    return now + timedelta(seconds=call_seconds + LEASE_MARGIN_SECONDS)


def _shipment_for(
    order_id: uuid.UUID, center: str, items: list[ParcelItem], request: dict[str, Any]
) -> tuple[Shipment, ShipmentAttempt | None]:
    """The order's shipment from `center`. The call that creates it also writes its items
    and its first booking attempt, claimed for sending by this process, all or nothing
    (one statement on PostgreSQL): nobody else sees the shipment without them, so this
    needs no lock and no look at earlier attempts. Returns the attempt only then."""
    shipment = Shipment(
        order_id=order_id,
        center=center,
        partner="",
        idempotency_key=f"order:{order_id}:shipment:{center}",
    )
    parcel = [ShipmentItem(sku=i.sku, batch=i.batch, quantity=i.quantity) for i in items]
    attempt = None
    if settings.COT_LOGISTICS_PARTNERS:
        attempt = ShipmentAttempt(
            partner=settings.COT_LOGISTICS_PARTNERS[0],
            idempotency_key=f"{shipment.idempotency_key}:1",
            request=request,
            sends=1,
            lease_until=_lease_until(timezone.now()),
        )
    try:
        _SHIPMENT_ITEMS_ATTEMPT.insert(shipment, parcel, [attempt] if attempt else [])
        return shipment, attempt
    except IntegrityError:
        return Shipment.objects.get(order_id=order_id, center=center), None


def shipment_book(
    *, order_id: uuid.UUID, reference: str, pincode: str, parcels: dict[str, list[ParcelItem]]
) -> BookOutcome:
    """Book one shipment per centre with the first partner (in `COT_LOGISTICS_PARTNERS`
    order) that serves the pincode.

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
        if _attempt_send(shipment, attempt, sends):
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
    """The attempt to (re)send: the last one unless it surely booked nothing (its key must
    be reused, the booking may exist); else a new attempt at the next partner that has not
    refused this shipment and was not tried in this call, written already claimed for
    sending by this process. Returns the attempt and, when it is new, its send count;
    (None, None) when there is none, or the shipment was cancelled (compensation ran)."""
    with transaction.atomic():
        # Locked: compensation looks at the attempts under the same lock, so an attempt is
        # either seen (and settled) by it or never created; every writer of attempts takes
        # it, so the next key is free.
        locked = Shipment.objects.select_for_update().get(pk=shipment.pk)
        attempts = list(locked.attempts.all())
        if attempts and attempts[-1].status not in NOT_BOOKED:
            return attempts[-1], None
        if locked.status != ShipmentStatus.BOOKED or locked.awb:
            return None, None
        refused = {a.partner for a in attempts if a.status == AttemptStatus.REFUSED}
        remaining = [
            p for p in settings.COT_LOGISTICS_PARTNERS if p not in refused and p not in tried
        ]
        if not remaining:
            return None, None
        attempt = _ATTEMPT_INSERT.create(
            shipment=shipment,
            partner=remaining[0],
            idempotency_key=f"{shipment.idempotency_key}:{len(attempts) + 1}",
            request=request,
            sends=1,
            lease_until=_lease_until(timezone.now()),
        )
        return attempt, 1


def _claim(attempt: ShipmentAttempt) -> int | None:
    """Take the right to send `attempt` now. Returns how often it has been sent, this send
    included; None when it is settled or another process is sending it."""
    now = timezone.now()
    claimed = (
        ShipmentAttempt.objects.filter(pk=attempt.pk, status__in=UNRESOLVED)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(sends=F("sends") + 1, lease_until=_lease_until(now))
    )
    if not claimed:
        return None
    attempt.refresh_from_db(fields=["sends", "status"])
    return attempt.sends


def _attempt_send(shipment: Shipment, attempt: ShipmentAttempt, sends: int | None = None) -> bool:
    """Send one booking request and record what it did (in `shipment` too). True when the
    shipment is booked (by this call or another), False when the attempt surely booked
    nothing (the caller may try the next partner); raises when the outcome is unknown
    (retry later, same key) or someone else is sending it. `sends` is given for an attempt
    this process has claimed already."""
    if sends is None:
        sends = _claim(attempt)
    if sends is None:
        attempt.refresh_from_db(fields=["status"])
        if attempt.status in UNRESOLVED:
            raise BookingInProgress(partners.target(attempt.partner), "sent by another process")
        shipment.refresh_from_db()
        return attempt.status == AttemptStatus.BOOKED
    try:
        booking = partners.book(
            partner=attempt.partner, idempotency_key=attempt.idempotency_key, **attempt.request
        )
    except ExternalRejected as exc:
        # The partner answered and booked nothing: it does not take this parcel. A partner
        # that had booked under this key would answer with that booking instead.
        ShipmentAttempt.objects.filter(pk=attempt.pk, status__in=UNRESOLVED).update(
            status=AttemptStatus.REFUSED,
            response={"status_code": exc.status_code, "body": exc.body},
            lease_until=None,
        )
        return False
    except ExternalUnavailable:
        # Only a first send that surely went nowhere frees the shipment to move on; an
        # earlier send of this key may have booked, so then wait for this partner.
        if sends == 1 and ShipmentAttempt.objects.filter(
            pk=attempt.pk, status=AttemptStatus.STARTED
        ).update(status=AttemptStatus.UNAVAILABLE, lease_until=None):
            return False
        ShipmentAttempt.objects.filter(pk=attempt.pk).update(lease_until=None)
        raise
    except Exception:
        ShipmentAttempt.objects.filter(pk=attempt.pk, status__in=UNRESOLVED).update(
            status=AttemptStatus.ERROR, lease_until=None
        )
        raise
    booked = {
        "partner": attempt.partner,
        "awb": booking.awb,
        "eta": booking.eta,
        "updated_at": timezone.now(),
    }
    response = {"awb": booking.awb, "eta": booking.eta.isoformat() if booking.eta else None}
    _ATTEMPT_AND_SHIPMENT_BOOKED.run(
        {"pk": attempt.pk, "response": response}, {"pk": shipment.pk, **booked}
    )
    for name, value in booked.items():
        setattr(shipment, name, value)
    return True


def shipment_cancel(*, order_id: uuid.UUID) -> int:
    """Cancel every booked shipment of the order at its partner. Returns how many changed.

    Idempotent. A booking request whose outcome is unknown is settled first by sending its
    key again (the partner never books twice for one key): a booking it made is cancelled,
    never left behind. Raises on outside trouble; the caller retries."""
    changed = 0
    for shipment in Shipment.objects.filter(order_id=order_id, status=ShipmentStatus.BOOKED):
        changed += _cancel_one(shipment)
    return changed


def _cancel_one(shipment: Shipment) -> int:
    with transaction.atomic():
        shipment = Shipment.objects.select_for_update().get(pk=shipment.pk)
        if shipment.status != ShipmentStatus.BOOKED:
            return 0
        # Attempts are written already claimed (sends=1); an unclaimed one (sends=0) can only
        # come from a worker still running the code before that change (a rolling deploy):
        # abandon it so its sender can no longer claim it.
        ShipmentAttempt.objects.filter(
            shipment=shipment, status=AttemptStatus.STARTED, sends=0
        ).update(status=AttemptStatus.ABANDONED)
        pending = shipment.attempts.filter(status__in=UNRESOLVED).last()
        if not shipment.awb and pending is None:
            # Nothing was ever booked, and no new attempt can start (it needs this lock).
            return Shipment.objects.filter(pk=shipment.pk).update(status=ShipmentStatus.CANCELLED)
    if pending is not None and not shipment.awb:
        _attempt_send(shipment, pending)  # raises while the outcome stays unknown
    if shipment.awb:
        partners.cancel(partner=shipment.partner, awb=shipment.awb)
    # Not cancelled when a booking landed meanwhile: the booking step, finding its order
    # ended, runs compensation again and that booking is cancelled then.
    return Shipment.objects.filter(
        pk=shipment.pk, status=ShipmentStatus.BOOKED, awb=shipment.awb
    ).update(status=ShipmentStatus.CANCELLED)
