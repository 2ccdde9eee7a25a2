"""Re-drive orders stuck in received/processing: the broker is only a doorbell.

Safe while the original run may still be alive, because every step is idempotent and
status moves are compare-and-set.
"""

from __future__ import annotations

import datetime
import logging

from django.conf import settings
from django.utils import timezone

from orders.enums import OrderStatus
from orders.models import Order
from prescriptions.selectors import prescription_decided_ids

logger = logging.getLogger(__name__)
BATCH = 500


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
    return len(stuck) + _resume_decided_holds()


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
