"""Money going back or coming in after the charge step: refunds (whole or partial),
compensation (void or refund), ops refunds, and cash collected on delivery.

Every refund is one attempt (`core.attempts`) with its own key, `order:<id>:refund:<n>`,
written under the payment's row lock before anything is sent, and only while the refunds
written so far plus this one stay within what was captured: so the sum of refunds can
never pass the capture, however many requests race. Each refund names its `cause` (the
return, the parcel, the cancelled lines it pays back), once per payment, so a redelivered
request finds its refund instead of making another. It goes to the gateway that captured
the charge (no failover); cash collected on delivery goes back as a payout to the UPI id
the customer gave."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from core import metrics
from core.attempts import UNRESOLVED, AttemptInProgress, Attempts
from core.http import ExternalError
from payments import gateways
from payments.enums import AttemptStatus, PaymentMethod, PaymentStatus
from payments.models import Payment, PaymentAttempt
from payments.services.charge import CHARGES, charge_send
from payments.signals import payment_changed

logger = logging.getLogger(__name__)

VOIDABLE = frozenset(
    {PaymentStatus.PENDING, PaymentStatus.PREPARED, PaymentStatus.PENDING_COLLECTION}
)
# Money was taken and some of it is still ours to give back.
REFUNDABLE = frozenset({PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED})
# A refund in one of these moved no money: it does not count against the capture.
NO_MONEY_MOVED = frozenset({AttemptStatus.REFUSED, AttemptStatus.ABANDONED})

# Refunds: sent only while the payment still has money to give back, only to the gateway
# that captured it (no failover). A gateway's refusal (4xx) is final for that refund.
REFUNDS: Attempts[Payment, PaymentAttempt] = replace(
    CHARGES,
    scope={"kind": "refund"},
    ready={"status__in": sorted(REFUNDABLE)},
    nowhere=NO_MONEY_MOVED,
    refused=AttemptStatus.REFUSED,
    in_progress=AttemptInProgress,
    failover=False,
    final=(),
)


class NotRefundable(Exception):
    """Nothing of this payment can be refunded (not captured, or its capture unknown)."""


class RefundExceedsCapture(NotRefundable):
    """The refund asked for is more than what is left of the capture."""

    def __init__(self, order_id: uuid.UUID, asked: Decimal, left: Decimal) -> None:
        super().__init__(f"payment for {order_id}: {asked} asked, {left} left to refund")
        self.asked, self.left = asked, left


def _charge_reference(payment: Payment, token: str) -> str:
    """The gateway's id of the capture. Unknown when a gateway notice (webhook) told us of
    a capture whose answer we never received: sending the captured key again returns the
    stored answer (the gateway captures nothing twice) and with it the id."""
    if payment.reference:
        return payment.reference
    attempt = CHARGES.of(payment).last()
    if attempt is None or not token:
        raise NotRefundable(f"payment for {payment.order_id}: the capture's id is unknown")
    result = gateways.charge(
        gateway=attempt.gateway,
        intent_id="",
        amount=payment.amount,
        currency=payment.currency,
        token=token,
        idempotency_key=attempt.idempotency_key,
    )
    Payment.objects.filter(pk=payment.pk, reference="").update(reference=result.reference)
    return result.reference


def refund_left(payment: Payment) -> Decimal:
    """What may still be refunded: the capture less every refund written that may move
    money (sent, in flight or still to send)."""
    promised = REFUNDS.of(payment).exclude(status__in=NO_MONEY_MOVED).aggregate(
        total=Sum("amount")
    )["total"] or Decimal(0)
    return payment.amount - promised


def _refund_write(
    *,
    order_id: uuid.UUID,
    amount: Decimal | None,
    cause: str,
    reason: str = "",
    by: str = "",
    vpa: str = "",
) -> PaymentAttempt | None:
    """Write a refund under the payment's row lock (see the module). `amount` None means
    all that is left. Returns the refund to send; the one already written for `cause`, if
    any; None when no money is to move: nothing left, or cash on delivery not yet
    collected (the amount due shrinks instead, and a payment that owes nothing more is
    voided)."""
    if amount is not None and amount <= 0:
        raise NotRefundable(f"payment for {order_id}: a refund must be more than 0")
    with transaction.atomic():
        payment = Payment.objects.select_for_update().filter(order_id=order_id).first()
        if payment is None:
            raise NotRefundable(f"order {order_id} has no payment")
        if cause:
            existing = REFUNDS.of(payment).filter(cause=cause).first()
            if existing is not None:
                return existing
        if payment.status == PaymentStatus.PENDING_COLLECTION:
            due = max(payment.amount - (amount or payment.amount), Decimal(0))
            Payment.objects.filter(pk=payment.pk).update(
                amount=due,
                status=PaymentStatus.PENDING_COLLECTION if due else PaymentStatus.VOIDED,
            )
            return None
        if payment.status == PaymentStatus.REFUNDED and amount is None:
            return None  # all of it went back already
        if payment.status not in REFUNDABLE | {PaymentStatus.REFUNDED}:
            raise NotRefundable(f"payment for {order_id} is {payment.status}, not refundable")
        left = refund_left(payment)
        if amount is None:
            if left <= 0:
                return None
            amount = left
        elif amount > left:
            raise RefundExceedsCapture(order_id, amount, left)
        gateway = payment.gateway
        if payment.method == PaymentMethod.COD:
            if not vpa:
                raise NotRefundable(
                    f"payment for {order_id} was cash on delivery: a refund needs the "
                    "customer's UPI id"
                )
            gateway = settings.COT_PAYMENT_GATEWAYS[0]
        number = REFUNDS.of(payment).count() + 1
        return PaymentAttempt.objects.create(
            payment=payment,
            kind="refund",
            gateway=gateway,
            idempotency_key=f"order:{order_id}:refund:{number}",
            amount=amount,
            cause=cause,
            reason=reason[:200],
            requested_by=by[:150],
            vpa=vpa,
        )


def _enqueue_send(attempt_id: int, token: str) -> None:
    # Function-local: the task module imports this one.
    from payments.tasks import send_refund

    send_refund.delay(attempt_id, token)


def refund_request(
    *,
    order_id: uuid.UUID,
    amount: Decimal | None,
    cause: str,
    reason: str = "",
    by: str = "",
    vpa: str = "",
    token: str = "",
) -> PaymentAttempt | None:
    """Ask for a refund: written now (in the caller's transaction, if any), sent by a
    task once that commits, retried until the gateway answers. Idempotent per `cause`.
    Raises `RefundExceedsCapture` when more is asked than is left, `NotRefundable` when
    the payment took no money (or, cash on delivery, no UPI id was given)."""
    attempt = _refund_write(
        order_id=order_id, amount=amount, cause=cause, reason=reason, by=by, vpa=vpa
    )
    if attempt is not None and attempt.status in UNRESOLVED:
        transaction.on_commit(lambda: _enqueue_send(attempt.pk, token))
    return attempt


def refund_send(*, attempt_id: int, token: str = "") -> bool:
    """Send one refund (or payout) and record it. True once it is made (by this call or
    an earlier one); False when the gateway refused it. Raises on outside trouble (same
    key again later) or while another process sends it."""
    attempt = PaymentAttempt.objects.select_related("payment").get(pk=attempt_id, kind="refund")
    if attempt.status not in UNRESOLVED:
        return attempt.status == AttemptStatus.REFUNDED
    payment = attempt.payment
    amount = attempt.amount or payment.amount
    key = attempt.idempotency_key
    if attempt.vpa:

        def call() -> str:
            return gateways.payout(
                gateway=attempt.gateway, vpa=attempt.vpa, amount=amount, idempotency_key=key
            )

    else:
        charge_id = _charge_reference(payment, token)

        def call() -> str:
            return gateways.refund(
                gateway=attempt.gateway, charge_id=charge_id, amount=amount, idempotency_key=key
            )

    def refunded(refund_id: str) -> tuple[str, dict[str, str]]:
        _refund_record(payment.pk, attempt, amount, refund_id)
        return AttemptStatus.REFUNDED, {"id": refund_id}

    done = REFUNDS.send(payment, attempt, call, refunded)
    attempt.refresh_from_db(fields=["status"])
    return done and attempt.status == AttemptStatus.REFUNDED


def _refund_record(
    payment_id: int, attempt: PaymentAttempt, amount: Decimal, refund_id: str
) -> None:
    """The gateway made the refund: add it to the payment, once (the payment's row lock
    orders two late senders of one attempt; the second finds it settled)."""
    payment = Payment.objects.select_for_update().get(pk=payment_id)
    if not PaymentAttempt.objects.filter(pk=attempt.pk, status__in=UNRESOLVED).exists():
        return
    refunded = payment.refunded_amount + amount
    status = (
        PaymentStatus.REFUNDED if refunded >= payment.amount else PaymentStatus.PARTIALLY_REFUNDED
    )
    Payment.objects.filter(pk=payment_id).update(
        refunded_amount=refunded, status=status, refund_reference=refund_id
    )
    payment_changed.send(
        sender=Payment,
        order_id=payment.order_id,
        status=status,
        data={
            "amount": str(amount),
            "refunded_amount": str(refunded),
            "refund": refund_id,
            "cause": attempt.cause or None,
            "reason": attempt.reason or None,
            "by": attempt.requested_by or None,
            **({"payout_to": attempt.vpa} if attempt.vpa else {}),
        },
    )
    transaction.on_commit(lambda: metrics.REFUNDED_TOTAL.inc(float(amount)))


def refunds_unsent(*, older_than_seconds: int) -> list[int]:
    """Refunds written but not made, nobody sending them (never sent, or their sender's
    lease is over), older than this: the sweeper sends them again."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        PaymentAttempt.objects.filter(kind="refund", status__in=UNRESOLVED, created_at__lt=cutoff)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=timezone.now()))
        .values_list("pk", flat=True)[:500]
    )


def payment_cancel(*, order_id: uuid.UUID, token: str = "") -> str | None:
    """Compensation: refund what is left of a capture, void anything not captured.
    Idempotent. Returns the new status when something changed, else None.

    A charge whose outcome is still unknown (timed out, never answered) is resolved first
    by asking its gateway again with its key (`token` is the order's payment token): money
    it took is refunded, never left behind. Raises on outside trouble; the caller retries.
    """
    payment = Payment.objects.filter(order_id=order_id).first()
    if payment is None:
        return None
    in_flight = None
    if payment.status == PaymentStatus.PREPARED:
        with transaction.atomic():
            # Under the payment's row lock, which every charge send takes too: with nothing
            # in flight the payment is voided before any charge can go out.
            payment = Payment.objects.select_for_update().get(pk=payment.pk)
            if payment.status == PaymentStatus.PREPARED:
                in_flight = CHARGES.abandon(payment)
                if in_flight is None:
                    Payment.objects.filter(pk=payment.pk).update(status=PaymentStatus.VOIDED)
                    return PaymentStatus.VOIDED
    if in_flight is not None and token:
        charge_send(payment, in_flight, token)
        payment.refresh_from_db()
    if payment.status in REFUNDABLE and payment.method != PaymentMethod.COD:
        # Sent here, not by a task: compensation retries until it is made. The refund's
        # news goes out in the refund's own transaction, so the order's timeline cannot
        # miss it whatever happens to this process right after.
        attempt = _refund_write(order_id=order_id, amount=None, cause="compensation")
        if attempt is None or not refund_send(attempt_id=attempt.pk, token=token):
            return None
        payment.refresh_from_db(fields=["status"])
        return PaymentStatus.REFUNDED if payment.status == PaymentStatus.REFUNDED else None
    if payment.status in VOIDABLE:
        updated = Payment.objects.filter(pk=payment.pk, status=payment.status).update(
            status=PaymentStatus.VOIDED
        )
        return PaymentStatus.VOIDED if updated else None
    return None


def payment_refund(
    *,
    order_id: uuid.UUID,
    amount: Decimal | None = None,
    reason: str = "",
    actor: str = "ops",
    vpa: str = "",
) -> bool:
    """An ops refund (from admin) of `amount`, or of all that is left. Sent at once; if
    the gateway cannot be reached the task keeps trying. True when the refund was made
    now; False when nothing was left to refund or it is still on its way. Raises
    `RefundExceedsCapture`/`NotRefundable` for what cannot be refunded at all."""
    attempt = _refund_write(
        order_id=order_id,
        amount=amount,
        cause=f"ops:{uuid.uuid4()}",
        reason=reason,
        by=actor,
        vpa=vpa,
    )
    if attempt is None:
        return False
    try:
        return refund_send(attempt_id=attempt.pk)
    except ExternalError as exc:
        logger.warning("refund %s: gateway trouble, the task retries (%s)", attempt.pk, exc)
        _enqueue_send(attempt.pk, "")
        return False


def payment_collect(*, order_id: uuid.UUID) -> bool:
    """Cash on delivery was collected: the payment is captured. Idempotent: True only for
    the call that moved it. (Called when the courier's webhook says delivered.)"""
    with transaction.atomic():
        return bool(
            Payment.objects.filter(
                order_id=order_id,
                method=PaymentMethod.COD,
                status=PaymentStatus.PENDING_COLLECTION,
            ).update(status=PaymentStatus.CAPTURED, reference=f"cod:{order_id}")
        )
