"""In-store pickup: an order set aside at its centre, handed over against a six-digit
code, cancelled when nobody collects it in time.

The pipeline runs as for a delivery, except that stock comes from the order's centre only
and no courier is booked; its last step sets the order aside (`order_pickup_ready`)
instead of confirming it. The counter (the client's API key, or ops in admin) enters the
customer's code (`order_collect`); five wrong codes lock collection until ops unlock it
(`order_pickup_unlock`). What waited longer than COT_PICKUP_HOLD_DAYS is cancelled
(`order_expire_pickups`) through `order_end`, like any cancellation after confirmation:
its committed stock back on the shelf in its batches, the prescription quantities given
back (the Schedule H1 register told), and after commit the payment refunded (cash at the
counter: nothing was taken, the payment is voided).
"""

from __future__ import annotations

import datetime
import hmac
import logging
import secrets
import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import metrics
from orders.enums import EventType, FailureReason, OrderStatus
from orders.models import Order, Pickup
from orders.services.ending import order_end
from orders.services.transitions import (
    InvalidTransition,
    order_event_record,
    order_transition,
)
from payments.models import Payment
from payments.services import payment_collect

logger = logging.getLogger(__name__)
S = OrderStatus
# Wrong codes before collection locks (a six-digit code must not be guessable at the
# counter); ops unlock it in admin.
MAX_WRONG_CODES = 5
# Orders ended per sweep; the rest (longest waiting first) wait for the next run.
BATCH = 500
READY = frozenset({S.READY_FOR_PICKUP})


class PickupCodeInvalid(Exception):
    def __init__(self, attempts_left: int) -> None:
        super().__init__(f"Wrong pickup code; {attempts_left} attempts left before it locks.")
        self.attempts_left = attempts_left


class PickupLocked(Exception):
    """Too many wrong codes: no code is accepted until ops unlock collection."""


def _new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def order_pickup_ready(
    *, order: Order, events: Iterable[tuple[str, dict[str, Any] | None]] = ()
) -> None:
    """Set a paid pickup order aside at its centre: its pickup (a fresh code, ready now)
    and the move to `ready_for_pickup`, with `events` before the status event. Call it in
    the transaction that commits the order's stock, with the order row locked and found
    `processing` (the confirm step), so that nobody else moves it meanwhile."""
    pickup, _ = Pickup.objects.get_or_create(
        order=order, defaults={"code": _new_code(), "ready_at": timezone.now()}
    )
    order_transition(
        order=order,
        to=S.READY_FOR_PICKUP,
        expected=S.PROCESSING,
        events=events,
        data={"center": order.pickup_center, "collect_by": _iso(pickup.collect_by)},
    )


def _iso(value: datetime.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def order_collect(*, order_id: uuid.UUID, code: str, by: str) -> None:
    """Hand a ready pickup order over against its code: `collected` (cash at the counter
    is taken then). `by` names who entered the code (`client:<name>`, `ops:<user>`).

    Raises, the order unchanged: InvalidTransition (not ready for pickup), PickupLocked,
    PickupCodeInvalid (the wrong code is counted; the fifth locks collection)."""
    with transaction.atomic():
        refusal = _collect(order_id, code, by)
    if refusal is not None:
        raise refusal


def _collect(order_id: uuid.UUID, code: str, by: str) -> Exception | None:
    # The order row first, as cancellation and the not-collected sweep take it: a code
    # entered as the order is cancelled either collects it or finds it cancelled.
    order = Order.objects.select_for_update().get(pk=order_id)
    if order.status != S.READY_FOR_PICKUP:
        return InvalidTransition(order.status, S.COLLECTED)
    pickup = Pickup.objects.get(order=order)
    if pickup.locked_at is not None:
        return PickupLocked()
    now = timezone.now()
    if not hmac.compare_digest(pickup.code.encode(), code.encode()):
        attempts = pickup.failed_attempts + 1
        locked = attempts >= MAX_WRONG_CODES
        Pickup.objects.filter(pk=pickup.pk).update(
            failed_attempts=attempts, locked_at=now if locked else None, updated_at=now
        )
        if locked:
            order_event_record(
                order_id=order.pk,
                type=EventType.PICKUP_LOCKED,
                data={"failed_attempts": attempts, "by": by},
            )
            logger.warning("order %s: pickup locked after %s wrong codes", order.number, attempts)
            return PickupLocked()
        return PickupCodeInvalid(MAX_WRONG_CODES - attempts)
    events: list[tuple[str, dict[str, Any] | None]] = []
    if payment_collect(order_id=order.pk):
        # Cash at the counter: taken as the order is handed over.
        collected = Payment.objects.values_list("amount", flat=True).get(order_id=order.pk)
        events.append((EventType.PAYMENT_CAPTURED, {"amount": str(collected), "method": "cod"}))
        transaction.on_commit(lambda: metrics.REVENUE_TOTAL.inc(float(collected)))
    Pickup.objects.filter(pk=pickup.pk).update(collected_at=now, collected_by=by, updated_at=now)
    order_transition(
        order=order, to=S.COLLECTED, expected=S.READY_FOR_PICKUP, events=events, data={"by": by}
    )
    return None


def order_pickup_unlock(*, order_id: uuid.UUID, by: str, note: str = "") -> bool:
    """Let a locked pickup take codes again (ops, once they know who is at the counter):
    the wrong codes are forgotten. False when it was not locked, or the order is no
    longer ready for pickup."""
    with transaction.atomic():
        unlocked = Pickup.objects.filter(
            order_id=order_id, locked_at__isnull=False, order__status=S.READY_FOR_PICKUP
        ).update(locked_at=None, failed_attempts=0, updated_at=timezone.now())
        if unlocked:
            order_event_record(
                order_id=order_id, type=EventType.PICKUP_UNLOCKED, data={"by": by, "note": note}
            )
    return bool(unlocked)


def order_expire_pickups(*, now: datetime.datetime | None = None) -> int:
    """Cancel (`pickup_not_collected`) the pickup orders ready for longer than
    COT_PICKUP_HOLD_DAYS: stock back in its batches, prescription quantities back, and
    (after commit, by the compensation) the payment refunded or voided. At most BATCH per
    call, longest waiting first. Idempotent: ending is compare-and-set. Returns how many
    were cancelled."""
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(days=settings.COT_PICKUP_HOLD_DAYS)
    expired = list(
        Order.objects.filter(status=S.READY_FOR_PICKUP, pickup__ready_at__lt=cutoff)
        .order_by("pickup__ready_at")
        .values_list("pk", flat=True)[:BATCH]
    )
    return sum(_end_uncollected(order_id) for order_id in expired)


def _end_uncollected(order_id: uuid.UUID) -> bool:
    with transaction.atomic():
        # Locked as a collection locks it: a code entered meanwhile wins or waits.
        order = Order.objects.select_for_update().filter(pk=order_id, status=S.READY_FOR_PICKUP)
        found = order.first()
        if found is None:
            return False  # collected or cancelled since the list was read
        ended = order_end(
            order=found,
            to=S.CANCELLED,
            reason=FailureReason.PICKUP_NOT_COLLECTED,
            expected=READY,
        )
    if ended:
        logger.info("order %s was not collected in time: cancelled", found.number)
    return ended
