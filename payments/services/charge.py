"""Payment preparation and charge. Idempotent by construction: every gateway call carries
a key written to the database before the call.

At most one capture per order, across gateways: an attempt (one key at one gateway) moves
to the next gateway only when it surely never reached its gateway (refused connection,
503, open breaker) on its first and only send. Any other failure leaves its outcome
unknown, and then only the same gateway with the same key is ever asked again.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Field, Q
from django.utils import timezone

from core.http import ExternalError, ExternalUnavailable
from core.prepared import Bind, Prepared, PreparedInsert, PreparedUpdates
from payments import gateways
from payments.enums import NOT_CAPTURED, UNRESOLVED, AttemptStatus, PaymentMethod, PaymentStatus
from payments.models import Payment, PaymentAttempt

PAYMENT_DECLINED = "payment_declined"
PAYMENT_UNAVAILABLE = "payment_unavailable"
# A sender holds its attempt this much longer than its call can take.
LEASE_MARGIN_SECONDS = 5


class ChargeInProgress(ExternalError):
    """Another process is sending this charge attempt right now: try again later."""


@dataclass(frozen=True)
class ChargeOutcome:
    status: str  # a PaymentStatus value
    reason: str | None = None


def _payment_field(name: str) -> Field:
    return Payment._meta.get_field(name)


def _attempt_field(name: str) -> Field:
    return PaymentAttempt._meta.get_field(name)


# The statements every order runs, compiled once per process (core.prepared); the rarer
# paths (failover, retries, compensation) stay plain ORM.
_PAYMENT_LOCKED = Prepared(
    lambda: Payment.objects.select_for_update().filter(
        order_id=Bind("order_id", _payment_field("order_id"))
    )
)
_PAYMENT_PREPARED = Prepared(
    lambda: Payment.objects.filter(
        pk=Bind("pk", _payment_field("id")), status=PaymentStatus.PENDING
    ),
    update=lambda: {
        "status": PaymentStatus.PREPARED,
        "gateway": Bind("gateway", _payment_field("gateway")),
        "intent_id": Bind("intent_id", _payment_field("intent_id")),
    },
)
_PAYMENT_SETTLED = Prepared(
    lambda: Payment.objects.filter(pk=Bind("pk", _payment_field("id"))),
    update=lambda: {
        name: Bind(name, _payment_field(name))
        for name in ("gateway", "reference", "status", "decline_code", "updated_at")
    },
)
_CHARGE_ATTEMPTS = Prepared(
    lambda: PaymentAttempt.objects.filter(
        payment_id=Bind("payment_id", _attempt_field("payment")), kind="charge"
    ).order_by("pk")
)
_ATTEMPT_SETTLED = Prepared(
    lambda: PaymentAttempt.objects.filter(pk=Bind("pk", _attempt_field("id"))),
    update=lambda: {
        name: Bind(name, _attempt_field(name))
        for name in ("status", "response", "lease_until", "updated_at")
    },
)
_ATTEMPT_AND_PAYMENT_SETTLED = PreparedUpdates(_ATTEMPT_SETTLED, _PAYMENT_SETTLED)
_PAYMENT_INSERT = PreparedInsert(Payment)
_ATTEMPT_INSERT = PreparedInsert(PaymentAttempt)


def _saved(updated: int) -> None:
    # What save(update_fields=...) would raise: the row is gone.
    if updated != 1:
        raise DatabaseError("Save with update_fields did not affect any rows.")


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
    # INSERT first, as the first call for an order does; a savepoint only inside a
    # caller's transaction, which the failed INSERT of a repeated call must not break.
    nested = transaction.get_connection().in_atomic_block
    try:
        with transaction.atomic() if nested else contextlib.nullcontext():
            payment = _PAYMENT_INSERT.create(
                order_id=order_id, method=method, amount=amount, currency=currency
            )
    except IntegrityError:
        payment = Payment.objects.get(order_id=order_id)
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
        prepared = _PAYMENT_PREPARED.run(pk=payment.pk, gateway=gateway, intent_id=intent_id)
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


def _lease_until(now: datetime) -> datetime:
    call_seconds = settings.COT_HTTP_CONNECT_TIMEOUT + settings.COT_HTTP_READ_TIMEOUT
    return now + timedelta(seconds=call_seconds + LEASE_MARGIN_SECONDS)


def _current_attempt(
    payment: Payment, gateway_order: list[str], tried: set[str]
) -> tuple[PaymentAttempt | None, int | None]:
    """The attempt to (re)send, under the payment's row lock: the last one unless it
    surely did not reach its gateway (its key must be reused, the charge may have
    happened); else a new attempt at the next gateway not yet tried in this call, written
    already claimed for sending by this process (the lock keeps out compensation and any
    other writer of attempts). Returns the attempt and, when it is new, its send count;
    (None, None) when every gateway was unavailable."""
    attempts = _CHARGE_ATTEMPTS.all(payment_id=payment.pk)
    if attempts and attempts[-1].status not in NOT_CAPTURED:
        return attempts[-1], None
    remaining = [g for g in gateway_order if g not in tried]
    if not remaining:
        return None, None
    attempt = _ATTEMPT_INSERT.create(
        payment=payment,
        kind="charge",
        gateway=remaining[0],
        idempotency_key=f"order:{payment.order_id}:charge:{len(attempts) + 1}",
        sends=1,
        lease_until=_lease_until(timezone.now()),
    )
    return attempt, 1


def _claim(attempt: PaymentAttempt) -> int | None:
    """Take the right to send `attempt` now. Returns how often it has been sent, this
    send included; None when it is settled or another process is sending it."""
    now = timezone.now()
    with transaction.atomic():
        # The payment's row lock orders this claim against compensation: a payment voided
        # (or being voided) is never charged.
        if (
            not Payment.objects.select_for_update()
            .filter(pk=attempt.payment_id, status=PaymentStatus.PREPARED)
            .exists()
        ):
            return None
        claimed = (
            PaymentAttempt.objects.filter(pk=attempt.pk, status__in=UNRESOLVED)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .update(sends=F("sends") + 1, lease_until=_lease_until(now))
        )
    if not claimed:
        return None
    attempt.refresh_from_db(fields=["sends", "status"])
    return attempt.sends


def attempt_send(
    payment: Payment, attempt: PaymentAttempt, token: str, sends: int | None = None
) -> bool:
    """Send one charge attempt and record what it did (in `payment` too). Returns False
    when the attempt surely never reached its gateway (the caller may try another); raises
    when the outcome is unknown (retry later, same key) or someone else is sending it.
    `sends` is given for an attempt this process has claimed already."""
    if sends is None:
        sends = _claim(attempt)
    if sends is None:
        attempt.refresh_from_db(fields=["status"])
        if attempt.status in UNRESOLVED:
            raise ChargeInProgress(gateways.target(attempt.gateway), "sent by another process")
        settled = attempt.status not in NOT_CAPTURED
        if settled:
            payment.refresh_from_db()  # settled by another process: read its outcome
        return settled
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
        # Only a first send that surely went nowhere frees the charge to move on; an
        # earlier send of this key may have captured, so then wait for this gateway.
        if sends == 1 and PaymentAttempt.objects.filter(
            pk=attempt.pk, status=AttemptStatus.STARTED
        ).update(status=AttemptStatus.UNAVAILABLE, lease_until=None):
            return False
        PaymentAttempt.objects.filter(pk=attempt.pk).update(lease_until=None)
        raise
    except Exception:
        PaymentAttempt.objects.filter(pk=attempt.pk, status__in=UNRESOLVED).update(
            status=AttemptStatus.ERROR, lease_until=None
        )
        raise
    now = timezone.now()
    attempt.status = AttemptStatus.CAPTURED if result.captured else AttemptStatus.DECLINED
    attempt.response = result.raw
    attempt.lease_until = None
    attempt.updated_at = now
    # Unconditional: money taken after the order ended (payment voided) must show, so
    # that compensation refunds it.
    payment.gateway = attempt.gateway
    payment.reference = result.reference
    payment.status = PaymentStatus.CAPTURED if result.captured else PaymentStatus.DECLINED
    payment.decline_code = result.decline_code
    payment.updated_at = now
    # The attempt and the payment, both or neither.
    for updated in _ATTEMPT_AND_PAYMENT_SETTLED.run(
        {
            "pk": attempt.pk,
            "status": attempt.status,
            "response": attempt.response,
            "lease_until": None,
            "updated_at": now,
        },
        {
            "pk": payment.pk,
            "gateway": payment.gateway,
            "reference": payment.reference,
            "status": payment.status,
            "decline_code": payment.decline_code,
            "updated_at": now,
        },
    ):
        _saved(updated)
    return True


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
            payment = _PAYMENT_LOCKED.get(order_id=order_id)
            if payment.status != PaymentStatus.PREPARED:
                # Settled, declined, voided or refunded already: nothing more to charge.
                return _outcome(payment)
            if payment.method == PaymentMethod.COD:
                payment.status = PaymentStatus.PENDING_COLLECTION
                Payment.objects.filter(pk=payment.pk).update(status=payment.status)
                return _outcome(payment)
            attempt, sends = _current_attempt(payment, _gateway_order(payment.gateway), tried)
        if attempt is None:
            raise ExternalUnavailable("gateways", "no gateway could take the charge")
        tried.add(attempt.gateway)
        if attempt_send(payment, attempt, token, sends=sends):
            return _outcome(payment)


def _outcome(payment: Payment) -> ChargeOutcome:
    if payment.status == PaymentStatus.DECLINED:
        return ChargeOutcome(status=payment.status, reason=PAYMENT_DECLINED)
    return ChargeOutcome(status=payment.status)
