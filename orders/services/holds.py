"""End orders that waited for a pharmacist longer than COT_HOLD_TIMEOUT_SECONDS.

An `on_hold` order keeps its stock reserved while it waits (the reservation-expiry job
leaves it alone), so a review that never comes would keep those units off the shelf for
good. Past the timeout the order is cancelled `prescription_review_timeout` through
`order_end`, which gives its stock and prescription claims back; the customer hears of it
through `order.cancelled` like any cancellation.
"""

from __future__ import annotations

import datetime
import logging
import uuid

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.utils import timezone

from orders.enums import EventType, FailureReason, OrderStatus, Step, SubstitutionStatus
from orders.models import Order, OrderEvent, OrderStep, Substitution
from orders.services.ending import order_end
from prescriptions.enums import CheckResult, PrescriptionStatus
from prescriptions.models import Prescription

logger = logging.getLogger(__name__)
S = OrderStatus
# Orders ended per run; the rest (oldest hold first) wait for the next run.
BATCH = 500
ON_HOLD = frozenset({S.ON_HOLD})


def order_expire_holds(*, now: datetime.datetime | None = None) -> int:
    """Cancel (`prescription_review_timeout`) the orders that have waited for a
    pharmacist's review longer than COT_HOLD_TIMEOUT_SECONDS, counted from their latest
    `order.on_hold`. At most BATCH per call, oldest hold first. Idempotent: an ended order
    is no longer on hold, and ending is compare-and-set. Returns how many were cancelled."""
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(seconds=settings.COT_HOLD_TIMEOUT_SECONDS)
    held_since = Subquery(
        OrderEvent.objects.filter(order_id=OuterRef("pk"), type=EventType.ORDER_ON_HOLD)
        .order_by("-pk")
        .values("at")[:1]
    )
    expired = list(
        _review_holds()
        .annotate(held_since=held_since)
        .filter(held_since__lt=cutoff)
        .order_by("held_since")
        .values_list("pk", flat=True)[:BATCH]
    )
    return sum(_end_expired_hold(order_id) for order_id in expired)


def _review_holds() -> QuerySet[Order]:
    """On-hold orders waiting for a pharmacist: their prescription check said `on_hold`
    and their prescription is still pending review. One whose prescription was decided
    but that missed the news is no timeout: the stuck-order sweeper hands it on.

    Only these holds time out. An order with a substitute offered waits for the client's
    answer, under its own timeout (`substitution_expire`)."""
    return Order.objects.exclude(
        Exists(
            Substitution.objects.filter(order_id=OuterRef("pk"), status=SubstitutionStatus.PROPOSED)
        )
    ).filter(
        Exists(
            OrderStep.objects.filter(
                order_id=OuterRef("pk"), step=Step.PRESCRIPTION, result=CheckResult.ON_HOLD
            )
        ),
        Exists(
            Prescription.objects.filter(
                pk=OuterRef("prescription_id"), status=PrescriptionStatus.PENDING_REVIEW
            )
        ),
        status=S.ON_HOLD,
    )


def _end_expired_hold(order_id: uuid.UUID) -> bool:
    """Cancel one expired hold unless its review got there first.

    The order's row is locked, then its prescription's: the order first, as a client's
    cancellation takes it, and the prescription as the review takes it. So a review that
    committed before this sees through (the order is left to its resume), and one that
    comes after waits for this commit, then finds the order ended when its news arrives
    (`order_resume_after_review` leaves an order that is not on hold alone)."""
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(pk=order_id, status=S.ON_HOLD).first()
        if order is None:
            return False  # resumed, rejected or cancelled since the list was read
        pending = Prescription.objects.select_for_update().filter(
            pk=order.prescription_id, status=PrescriptionStatus.PENDING_REVIEW
        )
        if not list(pending.values_list("pk", flat=True)):
            return False  # reviewed meanwhile: the review decides
        ended = order_end(
            order=order,
            to=S.CANCELLED,
            reason=FailureReason.PRESCRIPTION_REVIEW_TIMEOUT,
            expected=ON_HOLD,
        )
    if ended:
        logger.info("order %s waited too long for a prescription review: cancelled", order_id)
    return ended
