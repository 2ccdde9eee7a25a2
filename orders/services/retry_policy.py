"""How long a failing step keeps trying, and what happens when it stops.

Exceptions in a step mean infrastructure trouble (an outside call, the database). The
task layer retries them with backoff and asks here whether the step has tried long
enough; attempts are counted in the database, so the answer is the same however the
retries were spaced or redelivered.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from orders.enums import FailureReason, OrderStatus, Step
from orders.models import Order, OrderStep
from orders.services.ending import order_end

S = OrderStatus
# The payment steps wait a bounded time rather than a number of retries.
PAYMENT_STEPS = (Step.PAYMENT_PREPARE, Step.CHARGE)


def order_step_gives_up(order_id: uuid.UUID, step: str, retries: int) -> bool:
    """Whether a failing step has tried long enough. The payment steps wait a bounded time
    (`COT_PAYMENT_MAX_WAIT_SECONDS`) from their first attempt, recorded in the database as
    their step row, so "every gateway down" ends the same way however the retries were
    spaced or redelivered; other steps get `COT_STEP_MAX_RETRIES` retries."""
    if step in PAYMENT_STEPS:
        first = (
            OrderStep.objects.filter(order_id=order_id, step=step)
            .values_list("created_at", flat=True)
            .first()
        )
        if first is not None:
            waited = timezone.now() - first
            return waited >= timedelta(seconds=settings.COT_PAYMENT_MAX_WAIT_SECONDS)
    return retries >= settings.COT_STEP_MAX_RETRIES


def order_step_exhausted(order_id: uuid.UUID, step: str) -> None:
    """A step's retries ran out. Payment and booking trouble end the order; anything else
    (the database, say) leaves it for the sweeper to re-drive."""
    order = Order.objects.get(pk=order_id)
    if step in PAYMENT_STEPS:
        order_end(order=order, to=S.PAYMENT_FAILED, reason=FailureReason.PAYMENT_UNAVAILABLE)
    elif step == Step.SHIPMENT:
        order_end(order=order, to=S.CANCELLED, reason=FailureReason.FULFILMENT_UNAVAILABLE)
