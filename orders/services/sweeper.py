"""Re-drive orders stuck in received/processing: the broker is only a doorbell.

Safe while the original run may still be alive, because every step is idempotent and
status moves are compare-and-set.
"""

from __future__ import annotations

import datetime
import logging

from django.conf import settings
from django.utils import timezone

from inventory.enums import ReservationStatus
from inventory.models import Reservation
from logistics.enums import ShipmentStatus
from logistics.models import Shipment
from orders.enums import OrderStatus
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


def order_sweep_stuck(*, now: datetime.datetime | None = None) -> int:
    """Start the pipeline again for orders untouched for COT_STUCK_ORDER_SECONDS (not
    those flagged `needs_attention`)."""
    from orders import pipeline

    now = now or timezone.now()
    deadline = now - datetime.timedelta(seconds=settings.COT_STUCK_ORDER_SECONDS)
    stuck = list(
        Order.objects.filter(
            status__in=(OrderStatus.RECEIVED, OrderStatus.PROCESSING),
            updated_at__lt=deadline,
            # Flagged orders ran a step COT_STEP_MAX_ATTEMPTS times: re-driving them would
            # loop; they wait for a person.
            needs_attention=False,
        )
        .order_by("updated_at")
        .values_list("pk", flat=True)[:BATCH]
    )
    for order_id in stuck:
        # Touch first (compare-and-set on the old timestamp), so the next sweep waits again
        # and two sweepers never re-drive the same order at once.
        touched = Order.objects.filter(pk=order_id, updated_at__lt=deadline).update(updated_at=now)
        if touched:
            logger.info("sweeper re-drives order %s", order_id)
            pipeline.start(order_id)
    return len(stuck) + _resume_decided_holds() + _compensate_unfinished(deadline)


def _resume_decided_holds() -> int:
    """On-hold orders whose prescription was decided but that missed the news (the
    review landed between their check and their hold): hand them on now."""
    from orders import pipeline

    held = Order.objects.filter(status=OrderStatus.ON_HOLD, prescription_id__isnull=False)
    decided = prescription_decided_ids(
        prescription_ids=set(held.values_list("prescription_id", flat=True))
    )
    order_ids = list(held.filter(prescription_id__in=decided).values_list("pk", flat=True))
    for order_id in order_ids:
        pipeline.review_decided(order_id)
    return len(order_ids)


# How far back ended orders are checked for unfinished compensation; older leftovers are
# for ops (the order timeline shows what was and was not undone).
COMPENSATION_HORIZON = datetime.timedelta(days=7)


def _compensate_unfinished(deadline: datetime.datetime) -> int:
    """Ended orders that still hold money, a booking or stock (their compensation task
    was lost with Redis, or never enqueued): compensate them again (idempotent)."""
    from orders import pipeline

    ended = Order.objects.filter(
        status__in=(OrderStatus.REJECTED, OrderStatus.PAYMENT_FAILED, OrderStatus.CANCELLED),
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
    for order_id in owing:
        logger.warning("sweeper compensates ended order %s again", order_id)
        pipeline.compensate(order_id)
    return len(owing)
