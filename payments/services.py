"""Payment preparation, charge, void and refund. Idempotent by construction: every
gateway call carries a key written to the database before the call."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction

from core.http import ExternalUnavailable
from payments import gateways
from payments.enums import AttemptStatus, PaymentMethod, PaymentStatus
from payments.models import Payment, PaymentAttempt

PAYMENT_DECLINED = "payment_declined"
PAYMENT_UNAVAILABLE = "payment_unavailable"


@dataclass(frozen=True)
class ChargeOutcome:
    status: str  # a PaymentStatus value
    reason: str | None = None


def _gateway_order(preferred: str = "") -> list[str]:
    order = list(settings.COT_PAYMENT_GATEWAYS)
    if preferred in order:
        order.remove(preferred)
        order.insert(0, preferred)
    return order


def payment_prepare(
    *, order_id: uuid.UUID, method: str, amount: Decimal, currency: str = "INR"
) -> Payment:
    """Create the payment and, for gateway methods, an intent at the first gateway that
    answers. Idempotent: an existing prepared payment is returned as it is."""
    payment, _ = Payment.objects.get_or_create(
        order_id=order_id, defaults={"method": method, "amount": amount, "currency": currency}
    )
    if payment.status != PaymentStatus.PENDING:
        return payment
    if method == PaymentMethod.COD:
        payment.status = PaymentStatus.PREPARED
        payment.save(update_fields=["status", "updated_at"])
        return payment
    unavailable: ExternalUnavailable | None = None
    for gateway in _gateway_order():
        try:
            intent_id = gateways.create_intent(
                gateway=gateway,
                amount=amount,
                currency=currency,
                idempotency_key=f"order:{order_id}:intent:{gateway}",
            )
        except ExternalUnavailable as exc:
            unavailable = exc
            continue
        Payment.objects.filter(pk=payment.pk, status=PaymentStatus.PENDING).update(
            status=PaymentStatus.PREPARED, gateway=gateway, intent_id=intent_id
        )
        payment.refresh_from_db()
        return payment
    assert unavailable is not None
    raise unavailable


def _current_attempt(
    payment: Payment, gateway_order: list[str], tried: set[str]
) -> PaymentAttempt | None:
    """The attempt to (re)send: the last one unless it surely did not reach its gateway
    (its key must be reused, the charge may have happened); else a new attempt at the next
    gateway not yet tried in this call. None when every gateway was unavailable."""
    attempts = list(payment.attempts.filter(kind="charge"))
    if attempts and attempts[-1].status != AttemptStatus.UNAVAILABLE:
        return attempts[-1]
    remaining = [g for g in gateway_order if g not in tried]
    if not remaining:
        return None
    key = f"order:{payment.order_id}:charge:{len(attempts) + 1}"
    try:
        with transaction.atomic():
            return PaymentAttempt.objects.create(
                payment=payment, kind="charge", gateway=remaining[0], idempotency_key=key
            )
    except IntegrityError:
        # A concurrent delivery created the same attempt: send the same key.
        return PaymentAttempt.objects.get(idempotency_key=key)


def payment_charge(*, order_id: uuid.UUID, token: str) -> ChargeOutcome:
    """Capture the payment. A decline is final; an unavailable gateway fails over to the
    next; an ambiguous failure (timeout, 5xx) raises so the caller retries the same key.
    Raises ExternalUnavailable when no gateway could take the charge this time."""
    payment = Payment.objects.get(order_id=order_id)
    if payment.status != PaymentStatus.PREPARED:
        # Settled, declined, voided or refunded already: nothing more to charge.
        return _outcome(payment)
    if payment.method == PaymentMethod.COD:
        Payment.objects.filter(pk=payment.pk, status=PaymentStatus.PREPARED).update(
            status=PaymentStatus.PENDING_COLLECTION
        )
        payment.refresh_from_db()
        return _outcome(payment)
    gateway_order = _gateway_order(payment.gateway)
    tried: set[str] = set()
    while (attempt := _current_attempt(payment, gateway_order, tried)) is not None:
        tried.add(attempt.gateway)
        try:
            result = gateways.charge(
                gateway=attempt.gateway,
                intent_id=payment.intent_id if attempt.gateway == payment.gateway else "",
                amount=payment.amount,
                currency=payment.currency,
                token=token,
                idempotency_key=attempt.idempotency_key,
            )
        except ExternalUnavailable:
            if attempt.status == AttemptStatus.ERROR:
                # An earlier send of this key may have captured: never move this charge to
                # another gateway, wait for this one to come back.
                raise
            PaymentAttempt.objects.filter(pk=attempt.pk).update(status=AttemptStatus.UNAVAILABLE)
            continue
        except Exception:
            PaymentAttempt.objects.filter(pk=attempt.pk).update(status=AttemptStatus.ERROR)
            raise
        with transaction.atomic():
            attempt.status = AttemptStatus.CAPTURED if result.captured else AttemptStatus.DECLINED
            attempt.response = result.raw
            attempt.save(update_fields=["status", "response", "updated_at"])
            payment.gateway = attempt.gateway
            payment.reference = result.reference
            payment.status = PaymentStatus.CAPTURED if result.captured else PaymentStatus.DECLINED
            payment.decline_code = result.decline_code
            payment.save(
                update_fields=["gateway", "reference", "status", "decline_code", "updated_at"]
            )
        return _outcome(payment)
    raise ExternalUnavailable("gateways", "no gateway could take the charge")


def _outcome(payment: Payment) -> ChargeOutcome:
    if payment.status == PaymentStatus.DECLINED:
        return ChargeOutcome(status=payment.status, reason=PAYMENT_DECLINED)
    return ChargeOutcome(status=payment.status)


def payment_cancel(*, order_id: uuid.UUID) -> str | None:
    """Compensation: refund a capture, void anything not captured. Idempotent.
    Returns the new status when something changed, else None."""
    payment = Payment.objects.filter(order_id=order_id).first()
    if payment is None:
        return None
    if payment.status == PaymentStatus.CAPTURED:
        refund_reference = gateways.refund(
            gateway=payment.gateway,
            charge_id=payment.reference,
            amount=payment.amount,
            idempotency_key=f"order:{order_id}:refund",
        )
        updated = Payment.objects.filter(pk=payment.pk, status=PaymentStatus.CAPTURED).update(
            status=PaymentStatus.REFUNDED, refund_reference=refund_reference
        )
        return PaymentStatus.REFUNDED if updated else None
    if payment.status in (
        PaymentStatus.PENDING,
        PaymentStatus.PREPARED,
        PaymentStatus.PENDING_COLLECTION,
    ):
        updated = Payment.objects.filter(pk=payment.pk, status=payment.status).update(
            status=PaymentStatus.VOIDED
        )
        return PaymentStatus.VOIDED if updated else None
    return None
