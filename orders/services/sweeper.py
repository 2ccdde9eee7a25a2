"""Find what the broker may have dropped: orders stuck in received/processing, holds
whose prescription was decided without them hearing, ended orders that still owe an
undo. The broker is only a doorbell; the database says what is left to do.

This module finds; the pipeline acts on what it found (`pipeline.redrive`). Re-driving is
safe while the original run may still be alive, because every step is idempotent and
status moves are compare-and-set.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from inventory.enums import ReservationStatus
from inventory.models import Reservation
from logistics.enums import ShipmentStatus
from logistics.models import Shipment
from orders.enums import ENDED, REDRIVABLE, OrderStatus
from orders.models import Order
from payments.enums import PaymentStatus
from payments.models import Payment
from prescriptions.selectors import prescription_decided_ids

logger = logging.getLogger(__name__)
BATCH = 500
# What an ended order's payment must not stay in: money kept, or an intent left open.
UNDONE_PAYMENT = (
    PaymentStatus.CAPTURED,
    PaymentStatus.PREPARED,
    PaymentStatus.PENDING,
    PaymentStatus.PENDING_COLLECTION,
)


@dataclass(frozen=True)
class SweepFound:
    stuck: list[uuid.UUID] = field(default_factory=list)
    decided_holds: list[uuid.UUID] = field(default_factory=list)
    owing: list[uuid.UUID] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.stuck) + len(self.decided_holds) + len(self.owing)


def order_sweep_stuck(*, now: datetime.datetime | None = None) -> SweepFound:
    """What the pipeline should take up again: orders untouched for
    COT_STUCK_ORDER_SECONDS (not those flagged `needs_attention`), each touched so that
    the next sweep waits again; decided holds; ended orders that owe an undo."""
    now = now or timezone.now()
    deadline = now - datetime.timedelta(seconds=settings.COT_STUCK_ORDER_SECONDS)
    candidates = list(
        Order.objects.filter(
            status__in=REDRIVABLE,
            updated_at__lt=deadline,
            # Flagged orders ran a step COT_STEP_MAX_ATTEMPTS times: re-driving them would
            # loop; they wait for a person.
            needs_attention=False,
        )
        .order_by("updated_at")
        .values_list("pk", flat=True)[:BATCH]
    )
    stuck = []
    for order_id in candidates:
        # Touch first (compare-and-set on the old timestamp), so the next sweep waits again
        # and two sweepers never re-drive the same order at once.
        touched = Order.objects.filter(pk=order_id, updated_at__lt=deadline).update(updated_at=now)
        if touched:
            logger.info("sweeper re-drives order %s", order_id)
            stuck.append(order_id)
    return SweepFound(
        stuck=stuck, decided_holds=_decided_holds(), owing=_owing_compensation(deadline)
    )


def _decided_holds() -> list[uuid.UUID]:
    """On-hold orders whose prescription was decided but that missed the news (the
    review landed between their check and their hold)."""
    held = Order.objects.filter(status=OrderStatus.ON_HOLD, prescription_id__isnull=False)
    decided = prescription_decided_ids(
        prescription_ids=set(held.values_list("prescription_id", flat=True))
    )
    return list(held.filter(prescription_id__in=decided).values_list("pk", flat=True))


# How far back ended orders are checked for unfinished compensation; older leftovers are
# for ops (the order timeline shows what was and was not undone).
COMPENSATION_HORIZON = datetime.timedelta(days=7)


def _owing_compensation(deadline: datetime.datetime) -> list[uuid.UUID]:
    """Ended orders that still hold money, a booking or stock (their compensation task
    was lost with Redis, or never enqueued): to compensate again (idempotent)."""
    ended = Order.objects.filter(
        status__in=ENDED,
        updated_at__lt=deadline,
        updated_at__gte=deadline - COMPENSATION_HORIZON,
    ).values("pk")
    owing = (
        set(
            Payment.objects.filter(order_id__in=ended, status__in=UNDONE_PAYMENT).values_list(
                "order_id", flat=True
            )[:BATCH]
        )
        | set(
            Shipment.objects.filter(order_id__in=ended, status=ShipmentStatus.BOOKED).values_list(
                "order_id", flat=True
            )[:BATCH]
        )
        | set(
            Reservation.objects.filter(
                order_id__in=ended, status=ReservationStatus.HELD
            ).values_list("order_id", flat=True)[:BATCH]
        )
    )
    return sorted(owing)
