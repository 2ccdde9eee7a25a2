"""Money going back or coming in after the charge step: compensation (void or refund),
ops refunds, and cash collected on delivery. Idempotent: every refund carries the key
`order:<id>:refund`, written to the database (as a refund attempt) before the call and
sent as `core.attempts` says (claimed under the payment's row lock, with a lease)."""

from __future__ import annotations

import uuid
from dataclasses import replace

from django.db import transaction

from core.attempts import AttemptInProgress, Attempts
from payments import gateways
from payments.enums import AttemptStatus, PaymentMethod, PaymentStatus
from payments.models import Payment, PaymentAttempt
from payments.services.charge import CHARGES, charge_send
from payments.signals import payment_changed

VOIDABLE = frozenset(
    {PaymentStatus.PENDING, PaymentStatus.PREPARED, PaymentStatus.PENDING_COLLECTION}
)

# The refund of a capture, `order:<id>:refund`: sent only while the payment is captured,
# and only to the gateway that captured it (no failover).
REFUNDS: Attempts[Payment, PaymentAttempt] = replace(
    CHARGES,
    scope={"kind": "refund"},
    ready={"status": PaymentStatus.CAPTURED},
    nowhere=frozenset(),
    in_progress=AttemptInProgress,
    failover=False,
)


class NotRefundable(Exception):
    """Only a captured gateway payment can be refunded."""


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


def _refund(payment: Payment, token: str = "", news: dict[str, str] | None = None) -> bool:
    """Refund a captured payment through the gateway that captured it. Returns True when
    this call moved it to refunded; then `news`, if given, goes to `payment_changed` in
    the same transaction."""
    charge_id = _charge_reference(payment, token)
    key = f"order:{payment.order_id}:refund"
    attempt, _ = PaymentAttempt.objects.get_or_create(
        idempotency_key=key,
        defaults={"payment": payment, "kind": "refund", "gateway": payment.gateway},
    )
    moved = False

    def refund() -> str:
        return gateways.refund(
            gateway=attempt.gateway, charge_id=charge_id, amount=payment.amount, idempotency_key=key
        )

    def refunded(refund_id: str) -> tuple[str, dict[str, str]]:
        nonlocal moved
        moved = bool(
            Payment.objects.filter(pk=payment.pk, status=PaymentStatus.CAPTURED).update(
                status=PaymentStatus.REFUNDED, refund_reference=refund_id
            )
        )
        if moved and news is not None:
            payment_changed.send(
                sender=Payment,
                order_id=payment.order_id,
                status=PaymentStatus.REFUNDED,
                data={**news, "amount": str(payment.amount), "refund": refund_id},
            )
        return AttemptStatus.REFUNDED, {"id": refund_id}

    REFUNDS.send(payment, attempt, refund, refunded)
    payment.refresh_from_db()
    return moved


def payment_cancel(*, order_id: uuid.UUID, token: str = "") -> str | None:
    """Compensation: refund a capture, void anything not captured. Idempotent.
    Returns the new status when something changed, else None.

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
    if payment.status == PaymentStatus.CAPTURED:
        # The refund's news goes out in the refund's own transaction, so the order's
        # timeline cannot miss it whatever happens to this process right after.
        return PaymentStatus.REFUNDED if _refund(payment, token, news={}) else None
    if payment.status in VOIDABLE:
        updated = Payment.objects.filter(pk=payment.pk, status=payment.status).update(
            status=PaymentStatus.VOIDED
        )
        return PaymentStatus.VOIDED if updated else None
    return None


def payment_refund(*, order_id: uuid.UUID, actor: str = "ops") -> bool:
    """An ops refund of a captured payment (from admin). Idempotent: False when there was
    nothing (more) to refund. Tells `orders` through `payment_changed`."""
    payment = Payment.objects.get(order_id=order_id)
    if payment.status == PaymentStatus.REFUNDED:
        return False
    if payment.status != PaymentStatus.CAPTURED or payment.method == PaymentMethod.COD:
        raise NotRefundable(f"payment for {order_id} is {payment.status}, not refundable")
    return _refund(payment, news={"by": actor})


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
