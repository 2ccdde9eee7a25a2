"""Release stock that an unconfirmed order has held for longer than
COT_RESERVATION_TTL_SECONDS, and end the order it was held for.

`inventory` knows reservations, not orders, so the job lives here: inventory lists the
expired reservations, and orders decides what each one means for its order.
"""

from __future__ import annotations

import datetime
import logging
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inventory.selectors import reservation_held_order_ids
from inventory.services import stock_release
from orders.enums import ENDED, EXPIRABLE, EventType, FailureReason, OrderStatus, Step
from orders.models import Order, OrderStep
from orders.services.ending import order_end
from orders.services.transitions import order_event_record

logger = logging.getLogger(__name__)
S = OrderStatus
BATCH = 500
EXPIRED = {"cause": "reservation_expired"}


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
        if _end_expired(order):
            released += 1
    return released


def _end_expired(order: Order) -> bool:
    """End one expired order, labelled by its charge. The order's row lock orders this
    against the charge step, which takes the same lock (in `payment_charge`'s claim)
    after counting its run: either this sees the charge step's row and leaves the order
    to it, or the charge step sees the order ended and charges nothing. So an order
    charged after this read can never end labelled as a failed payment."""
    with transaction.atomic():
        locked = Order.objects.select_for_update().filter(pk=order.pk, status__in=EXPIRABLE)
        if not list(locked.values_list("pk", flat=True)):
            return False  # ended (or confirmed) since the page was read
        charge = list(
            OrderStep.objects.filter(order_id=order.pk, step=Step.CHARGE).values_list(
                "ok", flat=True
            )
        )
        if charge == [None]:
            # A charge in flight: its outcome decides, and the charge step's own bounded
            # wait (COT_PAYMENT_MAX_WAIT_SECONDS) ends the order if it never comes.
            return False
        if charge == [True]:
            # Paid: ends as a failed fulfilment, and the money goes back.
            to, reason = S.CANCELLED, FailureReason.FULFILMENT_UNAVAILABLE
        else:
            # Never charged: a payment that could not be completed in time (voided).
            to, reason = S.PAYMENT_FAILED, FailureReason.PAYMENT_UNAVAILABLE
        ended = order_end(order=order, to=to, reason=reason, expected=EXPIRABLE, data=EXPIRED)
    if ended:
        logger.info("reservation of order %s expired: %s (%s)", order.pk, to, reason)
    return ended
