"""Release stock that an unconfirmed order has held for longer than
COT_RESERVATION_TTL_SECONDS (CONTRACT §5), and end the order it was held for.

`inventory` knows reservations, not orders, so the job lives here: inventory lists the
expired reservations, and orders decides what each one means for its order.
"""

from __future__ import annotations

import datetime
import logging
import uuid

from django.conf import settings
from django.utils import timezone

from inventory.selectors import reservation_held_order_ids
from inventory.services import stock_release
from orders.enums import EventType, FailureReason, OrderStatus, Step
from orders.models import Order, OrderStep
from orders.services.steps import ENDED, order_end
from orders.services.transitions import order_event_record

logger = logging.getLogger(__name__)
S = OrderStatus
BATCH = 500
EXPIRED = {"cause": "reservation_expired"}
# Only orders the pipeline is still working on expire. `on_hold` orders wait for a
# pharmacist and keep their stock (DESIGN §4); their hold policy belongs to the
# prescription review flow (docs/DECISIONS.md, "Stock").
EXPIRABLE = frozenset({S.RECEIVED, S.PROCESSING})


def order_expire_reservations(*, now: datetime.datetime | None = None) -> int:
    """End unconfirmed orders whose reservation passed the TTL and give their stock back.
    Idempotent and safe beside a running pipeline: ending is compare-and-set, and a
    confirmation commits the reservation in the same transaction as its status move.
    Returns how many reservations were released."""
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(seconds=settings.COT_RESERVATION_TTL_SECONDS)
    released, after = 0, 0
    # Page by reservation id: held reservations that stay (on hold) must not keep the
    # rest of the worklist out of reach.
    while page := reservation_held_order_ids(created_before=cutoff, limit=BATCH, after=after):
        released += _expire([order_id for _, order_id in page])
        after = page[-1][0]
    return released


def _expire(order_ids: list[uuid.UUID]) -> int:
    orders = {o.pk: o for o in Order.objects.filter(pk__in=order_ids)}
    charged = set(
        OrderStep.objects.filter(order_id__in=order_ids, step=Step.CHARGE, ok=True).values_list(
            "order_id", flat=True
        )
    )
    released = 0
    for order_id in order_ids:
        order = orders.get(order_id)
        if order is None or order.status in ENDED:
            # A stock step that finished after its order had ended (and released): nothing
            # else would ever give these units back.
            if stock_release(order_id=order_id):
                released += 1
                if order is not None:
                    order_event_record(
                        order_id=order_id, type=EventType.INVENTORY_RELEASED, data=EXPIRED
                    )
            continue
        if order.status not in EXPIRABLE:
            continue
        # Paid orders end as a failed fulfilment (refunded); the rest as a payment that
        # could not be completed in time (voided). Either way nothing stays charged.
        if order_id in charged:
            to, reason = S.CANCELLED, FailureReason.FULFILMENT_UNAVAILABLE
        else:
            to, reason = S.PAYMENT_FAILED, FailureReason.PAYMENT_UNAVAILABLE
        if order_end(order=order, to=to, reason=reason, expected=EXPIRABLE, data=EXPIRED):
            logger.info("reservation of order %s expired: %s (%s)", order_id, to, reason)
            released += 1
    return released
