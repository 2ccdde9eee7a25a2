"""Gateway notices (the payments webhook): late captures, refunds and failures, applied to
our own rows once, whatever order and however often they arrive.

A notice's `reference` names either the gateway's id (of the charge or the refund) or our
own reference, which is the attempt's idempotency key sent with every charge and refund:
a capture we never heard back about is only known to the gateway by that key.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Q

from core.attempts import UNRESOLVED, attempt_settle
from payments.enums import AttemptStatus, PaymentMethod, PaymentStatus
from payments.models import Payment, PaymentAttempt
from payments.services.charge import CHARGES
from payments.signals import payment_changed

APPLIED = "applied"
ALREADY_APPLIED = "already_applied"  # a replay, or news we already had
IGNORED = "ignored"  # contradicts what we know (e.g. "failed" for a capture we hold)
UNKNOWN_REFERENCE = "unknown_reference"


def _find(reference: str) -> tuple[Payment, PaymentAttempt | None] | None:
    attempt = PaymentAttempt.objects.filter(idempotency_key=reference).first()
    if attempt is not None:
        return Payment.objects.select_for_update().get(pk=attempt.payment_id), attempt
    payment = (
        Payment.objects.select_for_update()
        .filter(Q(reference=reference) | Q(refund_reference=reference))
        .first()
    )
    return None if payment is None else (payment, None)


def payment_notice_apply(*, reference: str, status: str, at: datetime) -> str:
    """Apply one notice; returns one of APPLIED, ALREADY_APPLIED, IGNORED,
    UNKNOWN_REFERENCE. Changes that matter to the order go out through `payment_changed`
    in the same transaction."""
    with transaction.atomic():
        found = _find(reference)
        if found is None:
            return UNKNOWN_REFERENCE
        payment, attempt = found
        if payment.method == PaymentMethod.COD:
            return IGNORED
        if status == PaymentStatus.CAPTURED:
            return _captured(payment, attempt, reference, at)
        if status == PaymentStatus.REFUNDED:
            return _refunded(payment, attempt, reference, at)
        return _failed(payment, attempt, at)


def _captured(
    payment: Payment, attempt: PaymentAttempt | None, reference: str, at: datetime
) -> str:
    if attempt is not None and attempt.kind != "charge":
        return IGNORED
    if payment.status in (PaymentStatus.CAPTURED, PaymentStatus.REFUNDED):
        return ALREADY_APPLIED
    if attempt is None:
        # Named by the gateway's charge id, which we only know from an answer: the last
        # charge attempt is the one that captured.
        attempt = CHARGES.of(payment).last()
        if attempt is None:
            return IGNORED
    charge_id = payment.reference if attempt.idempotency_key == reference else reference
    previous = payment.status
    Payment.objects.filter(pk=payment.pk).update(
        status=PaymentStatus.CAPTURED, gateway=attempt.gateway, reference=charge_id
    )
    _noted(attempt, AttemptStatus.CAPTURED, at)
    payment_changed.send(
        sender=Payment,
        order_id=payment.order_id,
        status=PaymentStatus.CAPTURED,
        data={"amount": str(payment.amount), "gateway": attempt.gateway, "was": previous},
    )
    return APPLIED


def _refunded(
    payment: Payment, attempt: PaymentAttempt | None, reference: str, at: datetime
) -> str:
    if attempt is not None and attempt.kind != "refund":
        return IGNORED
    if payment.status == PaymentStatus.REFUNDED:
        return ALREADY_APPLIED
    if payment.status != PaymentStatus.CAPTURED:
        return IGNORED
    refund_id = "" if attempt is not None else reference
    Payment.objects.filter(pk=payment.pk).update(
        status=PaymentStatus.REFUNDED, refund_reference=refund_id
    )
    if attempt is not None:
        _noted(attempt, AttemptStatus.REFUNDED, at)
    payment_changed.send(
        sender=Payment,
        order_id=payment.order_id,
        status=PaymentStatus.REFUNDED,
        data={"amount": str(payment.amount), "by": "gateway", "refund": refund_id},
    )
    return APPLIED


def _failed(payment: Payment, attempt: PaymentAttempt | None, at: datetime) -> str:
    if attempt is None or attempt.kind != "charge":
        return IGNORED
    if attempt.status == AttemptStatus.FAILED:
        return ALREADY_APPLIED
    if payment.status != PaymentStatus.PREPARED or attempt.status not in UNRESOLVED:
        return IGNORED
    # The gateway says this key took no money: the next attempt may go to any gateway.
    _noted(attempt, AttemptStatus.FAILED, at)
    return APPLIED


def _noted(attempt: PaymentAttempt, status: str, at: datetime) -> None:
    """The attempt's outcome as the gateway's notice tells it (after the payment's write,
    in the same transaction)."""
    notice = {"notice": str(status), "at": at.isoformat()}
    attempt_settle(attempt, status=status, response={**attempt.response, **notice})
