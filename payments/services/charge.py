"""Payment preparation and charge. Idempotent by construction: every gateway call carries
a key written to the database before the call.

At most one capture per order, across gateways: an attempt (one key at one gateway) moves
to the next gateway only when it surely never reached its gateway (refused connection,
503, open breaker) on its first and only send. Any other failure leaves its outcome
unknown, and then only the same gateway with the same key is ever asked again.

Charge attempts follow `core.attempts`: each is written, already claimed, under the
payment's row lock; any later send claims it under that lock, with a lease that outlives
the call, so two processes never send one key at once and a dead sender's key is sent
again once its lease ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.attempts import AttemptInProgress, Attempts
from core.http import ExternalUnavailable
from payments import gateways
from payments.enums import NOT_CAPTURED, AttemptStatus, PaymentMethod, PaymentStatus
from payments.models import Payment, PaymentAttempt

PAYMENT_DECLINED = "payment_declined"
PAYMENT_UNAVAILABLE = "payment_unavailable"


class ChargeInProgress(AttemptInProgress):
    """Another process is sending this charge attempt right now: try again later."""


@dataclass(frozen=True)
class ChargeOutcome:
    status: str  # a PaymentStatus value
    reason: str | None = None
    # The gateway's reason for a decline (`insufficient_funds`...), else "".
    decline_code: str = ""


# Charge attempts, `order:<id>:charge:<n>`: sent only while the payment is prepared (a
# payment voided, or being voided, is never charged). A declined payment reopened for
# another payment method (`payment_retry_open`) is charged with a new attempt and key.
CHARGES: Attempts[Payment, PaymentAttempt] = Attempts(
    PaymentAttempt,
    parent="payment",
    peer="gateway",
    scope={"kind": "charge"},
    ready={"status": PaymentStatus.PREPARED},
    nowhere=NOT_CAPTURED,
    target=gateways.target,
    in_progress=ChargeInProgress,
    final=frozenset({AttemptStatus.DECLINED}),
)


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
        prepared = Payment.objects.filter(pk=payment.pk, status=PaymentStatus.PENDING).update(
            status=PaymentStatus.PREPARED, gateway=gateway, intent_id=intent_id
        )
        if prepared:
            payment.status, payment.gateway, payment.intent_id = (
                PaymentStatus.PREPARED,
                gateway,
                intent_id,
            )
        else:
            payment.refresh_from_db()  # voided, or prepared by a concurrent call
        return payment
    assert unavailable is not None
    raise unavailable


def payment_amount_set(*, order_id: uuid.UUID, amount: Decimal) -> bool:
    """Change what the payment will charge (lines dropped from the order before its
    charge). Only while nothing was charged: False, with nothing changed, once a charge
    was attempted or the payment settled otherwise."""
    changed = (
        Payment.objects.filter(
            order_id=order_id, status__in=(PaymentStatus.PENDING, PaymentStatus.PREPARED)
        )
        .exclude(attempts__kind="charge")
        .update(amount=amount)
    )
    return changed == 1


def payment_retry_open(*, order_id: uuid.UUID, method: str) -> bool:
    """Make a declined payment chargeable again with another payment method (the order's
    payment retry): back to prepared, its decline forgotten, its intent kept for the next
    charge attempt, which gets a key of its own. Cash on delivery needs no gateway.
    Returns False, changing nothing, when the payment is not declined (it was reopened
    already, or a gateway's notice settled it otherwise)."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().filter(order_id=order_id).first()
        if payment is None or payment.status != PaymentStatus.DECLINED:
            return False
        fields: dict[str, Any] = {
            "status": PaymentStatus.PREPARED,
            "method": method,
            "decline_code": "",
            # The declined charge's id: kept on its attempt, not taken for a capture's.
            "reference": "",
            "updated_at": timezone.now(),
        }
        if method == PaymentMethod.COD:
            fields.update(gateway="", intent_id="")
        Payment.objects.filter(pk=payment.pk).update(**fields)
    return True


def charge_send(
    payment: Payment, attempt: PaymentAttempt, token: str, sends: int | None = None
) -> bool:
    """Send one charge attempt and record what it did (in `payment` too). Returns False
    when the attempt surely never reached its gateway (the caller may try another); raises
    when the outcome is unknown (retry later, same key) or someone else is sending it.
    `sends` is given for an attempt this process has claimed already."""

    def charge() -> gateways.ChargeResult:
        return gateways.charge(
            gateway=attempt.gateway,
            intent_id=payment.intent_id if attempt.gateway == payment.gateway else "",
            amount=payment.amount,
            currency=payment.currency,
            token=token,
            idempotency_key=attempt.idempotency_key,
        )

    def charged(result: gateways.ChargeResult) -> tuple[str, dict[str, Any]]:
        # Unconditional: money taken after the order ended (payment voided) must show, so
        # that compensation refunds it.
        payment.gateway = attempt.gateway
        payment.reference = result.reference
        payment.status = PaymentStatus.CAPTURED if result.captured else PaymentStatus.DECLINED
        payment.decline_code = result.decline_code
        payment.save(update_fields=["gateway", "reference", "status", "decline_code", "updated_at"])
        status = AttemptStatus.CAPTURED if result.captured else AttemptStatus.DECLINED
        return status, result.raw

    return CHARGES.send(payment, attempt, charge, charged, sends=sends)


def payment_charge(
    *, order_id: uuid.UUID, token: str, proceed: Callable[[], bool] | None = None
) -> ChargeOutcome:
    """Capture the payment. A decline is final; an unavailable gateway (or its open
    breaker) fails over to the next; an ambiguous failure (timeout, 5xx) raises so the
    caller retries the same key. Raises ExternalUnavailable when no gateway could take the
    charge this time.

    `proceed` runs first in each claim's transaction (before the payment's lock, so locks
    are always taken order first): when it says no, nothing is charged and the payment's
    status (still prepared) comes back. The caller uses it to lock and check its order."""
    tried: set[str] = set()
    while True:
        with transaction.atomic():
            if proceed is not None and not proceed():
                return _outcome(Payment.objects.get(order_id=order_id))
            # The payment's row lock orders this against compensation: a payment voided
            # (or being voided) is never charged, and no attempt is written behind its back.
            payment = Payment.objects.select_for_update().get(order_id=order_id)
            if payment.status != PaymentStatus.PREPARED:
                # Settled, declined, voided or refunded already: nothing more to charge.
                return _outcome(payment)
            if payment.method == PaymentMethod.COD:
                payment.status = PaymentStatus.PENDING_COLLECTION
                Payment.objects.filter(pk=payment.pk).update(status=payment.status)
                return _outcome(payment)
            attempt, sends = CHARGES.current(
                payment,
                peers=_gateway_order(payment.gateway),
                tried=tried,
                key=f"order:{payment.order_id}:charge",
            )
        if attempt is None:
            raise ExternalUnavailable("gateways", "no gateway could take the charge")
        tried.add(attempt.gateway)
        if charge_send(payment, attempt, token, sends=sends):
            return _outcome(payment)


def _outcome(payment: Payment) -> ChargeOutcome:
    if payment.status == PaymentStatus.DECLINED:
        return ChargeOutcome(
            status=payment.status, reason=PAYMENT_DECLINED, decline_code=payment.decline_code
        )
    return ChargeOutcome(status=payment.status)
