"""Payment retry: an order whose payment was declined may be paid another way.

A client configured with `payment_retry_seconds` gets a window, counted from its order's
first decline: the order waits `awaiting_payment` (its stock reserved, its prescription
claims kept; `payment.retry_requested` names the window's end), and the client may send
another payment method (`order_payment_retry`), which goes on from the charge with a new
charge attempt and key. Declined again within the window, it waits again, until the same
end. When the window ends unpaid, the order ends `payment_failed` / `payment_declined`
(`order_expire_payment_retries`), its stock released, and compensation voids whatever its
payment still holds. The client may cancel it meanwhile.

Only a decline opens the window. `payment_unavailable` (no gateway answered in time)
does not: the last charge's outcome may still be unknown at its gateway, and a charge
with another token and key could then take the money twice.
"""

from __future__ import annotations

import datetime
import logging
import uuid

from django.db import transaction
from django.utils import timezone

from core.models import ApiClient
from orders.enums import FailureReason, OrderStatus, Step
from orders.models import Order, OrderStep
from orders.services.ending import order_end
from orders.services.transitions import InvalidTransition, order_transition
from payments.services import payment_retry_open

logger = logging.getLogger(__name__)
S = OrderStatus
AWAITING = frozenset({S.AWAITING_PAYMENT})
# Orders ended per sweep; the rest (the earliest window first) wait for the next run.
BATCH = 500
EXPIRED = {"cause": "payment_retry_expired"}


class PaymentRetryClosed(Exception):
    """The order's payment retry window has passed."""


def _iso(value: datetime.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def order_await_payment(*, order: Order, decline_code: str = "") -> bool:
    """A running order's charge was declined: if its client allows a payment retry and the
    window (from the order's first decline) is still open, move it to `awaiting_payment`
    (compare-and-set) with `payment.retry_requested`. Returns True when the window is open
    (the order waits, unless another actor moved it first), False when the caller is to
    fail the payment as before."""
    now = timezone.now()
    until = order.payment_retry_until
    if until is None:
        seconds = (
            ApiClient.objects.filter(pk=order.client_id)
            .values_list("payment_retry_seconds", flat=True)
            .first()
        )
        if not seconds:
            return False
        until = now + datetime.timedelta(seconds=seconds)
    if until <= now:
        return False
    data = {
        "reason": FailureReason.PAYMENT_DECLINED,
        "decline_code": decline_code,
        "payment_retry_until": _iso(until),
    }
    with transaction.atomic():
        moved = order_transition(
            order=order, to=S.AWAITING_PAYMENT, expected=S.PROCESSING, data=data
        )
        if moved and order.payment_retry_until is None:
            Order.objects.filter(pk=order.pk).update(payment_retry_until=until)
            order.payment_retry_until = until
    if moved:
        logger.info("order %s declined: awaiting payment until %s", order.pk, _iso(until))
    return True


def order_payment_retry(*, order: Order, payment_method: str, payment_token: str) -> None:
    """The client pays an `awaiting_payment` order another way: the order goes back to
    `processing` and its charge step runs afresh with this method and token (the caller
    starts the pipeline from the charge after commit). One transaction under the order's
    row lock, so of two concurrent retries one moves the order and the other finds it
    moved: a single charge.

    Raises, changing nothing: InvalidTransition (the order is not awaiting payment) and
    PaymentRetryClosed (its window has passed, whether or not the sweep has run)."""
    with transaction.atomic():
        # The order's row first, then the payment's, as the charge step takes them.
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if locked.status != S.AWAITING_PAYMENT:
            raise InvalidTransition(locked.status, S.PROCESSING)
        if locked.payment_retry_until is None or locked.payment_retry_until <= timezone.now():
            raise PaymentRetryClosed(str(order.pk))
        Order.objects.filter(pk=order.pk).update(
            payment_method=payment_method, payment_token=payment_token
        )
        payment_retry_open(order_id=order.pk, method=payment_method)
        # The charge step starts over, as a new row: a late run of the declined charge
        # cannot record its outcome on it (it names the old row), and the reservation-expiry
        # job sees a charge in flight and leaves the order to it.
        OrderStep.objects.filter(order_id=order.pk, step=Step.CHARGE).delete()
        OrderStep.objects.create(order_id=order.pk, step=Step.CHARGE)
        order_transition(
            order=locked,
            to=S.PROCESSING,
            expected=S.AWAITING_PAYMENT,
            data={"cause": "payment_retry", "payment_method": payment_method},
        )
    order.status = locked.status
    logger.info("order %s: payment retried (%s)", order.pk, payment_method)


def order_expire_payment_retries(*, now: datetime.datetime | None = None) -> int:
    """End `payment_failed` / `payment_declined` the orders whose payment retry window has
    passed unpaid: stock released and prescription claims returned in the same
    transaction; compensation (after commit) voids what the payment still holds. At most
    BATCH per call, the earliest window first; idempotent. Returns how many ended."""
    now = now or timezone.now()
    due = list(
        Order.objects.filter(status=S.AWAITING_PAYMENT, payment_retry_until__lte=now)
        .order_by("payment_retry_until")
        .values_list("pk", flat=True)[:BATCH]
    )
    return sum(_fail_unpaid(order_id, now) for order_id in due)


def _fail_unpaid(order_id: uuid.UUID, now: datetime.datetime) -> bool:
    """End one order whose window passed, unless a retry got there first (both take the
    order's row lock: a retry committed before this finds nothing to do here, and one
    after finds the order ended)."""
    with transaction.atomic():
        order = (
            Order.objects.select_for_update()
            .filter(pk=order_id, status=S.AWAITING_PAYMENT, payment_retry_until__lte=now)
            .first()
        )
        if order is None:
            return False  # retried or cancelled since the list was read
        ended = order_end(
            order=order,
            to=S.PAYMENT_FAILED,
            reason=FailureReason.PAYMENT_DECLINED,
            expected=AWAITING,
            data=EXPIRED,
        )
    if ended:
        logger.info("order %s: payment retry window passed unpaid", order_id)
    return ended
