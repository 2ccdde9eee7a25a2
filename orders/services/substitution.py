"""Generic substitution with the customer's consent.

A pharmacist reviewing a prescription may offer, for one line of an order waiting on it,
a product of the same composition with sellable stock where the order goes. The order
stays `on_hold` until the client accepts or declines, or COT_SUBSTITUTION_TIMEOUT_SECONDS
pass (as declined, `expired`).

Accepted: the line becomes the substitute (`substituted_for` keeps the sku ordered), the
original's held units go back, the substitute's are reserved, and the order's total and
payment amount follow. The prescription quantity is claimed against the original line's
prescription item (the substitute shares its composition). Declined: a `ship_available`
order drops the line, any other is rejected `substitution_declined`. Either way the order
resumes once nothing else holds it.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from core.models import ApiClient
from core.money import to_money
from inventory.selectors import product_substitutes
from inventory.services import stock_swap_held_sku
from orders.enums import (
    EventType,
    FailureReason,
    LineStatus,
    OnPartial,
    OrderStatus,
    Step,
    SubstitutionStatus,
)
from orders.models import Order, OrderLine, OrderStep, Substitution
from orders.services.ending import order_end
from orders.services.header_decision import order_lines_drop
from orders.services.steps import RESUMED, order_resume_after_review
from orders.services.transitions import order_event_record
from payments.services import payment_amount_set
from prescriptions.services import InvalidSubstitute, LineReview, SubstitutionTarget

logger = logging.getLogger(__name__)
S = OrderStatus
SS = SubstitutionStatus
# Expired proposals settled per sweep; the rest (oldest first) wait for the next run.
BATCH = 500


class SubstitutionClosed(Exception):
    """The substitution was answered already, or expired."""


def substitution_offer(*, prescription_id: uuid.UUID, offers: Sequence[LineReview]) -> bool:
    """Record a pharmacist's substitute offers (inside the review's transaction): each for
    an active line of an on-hold order waiting on this prescription, of a product that
    `product_substitutes` lists for it there. Raises InvalidSubstitute for any offer that
    does not fit, before anything is written (the review rolls back). Returns True."""
    planned: list[tuple[Order, OrderLine, str, str, object]] = []
    for offer in offers:
        order = (
            Order.objects.select_for_update()
            .filter(pk=offer.order_id, prescription_id=prescription_id, status=S.ON_HOLD)
            .first()
        )
        if order is None:
            raise InvalidSubstitute(f"order {offer.order_id} is not waiting on this prescription")
        line = order.lines.filter(sku=offer.sku, status=LineStatus.ACTIVE).first()
        if line is None:
            raise InvalidSubstitute(f"order {order.pk} has no line {offer.sku}")
        if line.substitutions.filter(status=SS.PROPOSED).exists():
            raise InvalidSubstitute(f"line {offer.sku} already has a substitute offered")
        found = {
            s.sku: s
            for s in product_substitutes(
                sku=line.sku,
                pincode=order.delivery_pincode,
                center=order.pickup_center,
                quantity=line.quantity,
            )
        }
        substitute = found.get(offer.substitute_sku)
        if substitute is None:
            raise InvalidSubstitute(
                f"{offer.substitute_sku} cannot stand in for {offer.sku} in order {order.pk}"
            )
        planned.append((order, line, substitute.sku, substitute.name, substitute.price))
    for order, line, sku, name, price in planned:
        difference = to_money((price - line.unit_price) * line.quantity)
        substitution = Substitution.objects.create(
            order=order,
            line=line,
            sku=line.sku,
            substitute_sku=sku,
            substitute_name=name,
            substitute_unit_price=price,
            price_difference=difference,
        )
        order_event_record(
            order_id=order.pk,
            type=EventType.SUBSTITUTION_PROPOSED,
            data={
                "id": str(substitution.pk),
                "sku": line.sku,
                "substitute_sku": sku,
                "price_difference": str(difference),
            },
        )
    return True


def substitution_targets(*, prescription_id: uuid.UUID) -> list[SubstitutionTarget]:
    """The active lines of the on-hold orders waiting on this prescription, oldest order
    first: what a reviewing pharmacist may offer a substitute for."""
    lines = (
        OrderLine.objects.filter(
            order__prescription_id=prescription_id,
            order__status=S.ON_HOLD,
            status=LineStatus.ACTIVE,
        )
        .select_related("order")
        .order_by("order__created_at", "pk")
    )
    return [
        SubstitutionTarget(
            order_id=line.order_id,
            order_number=line.order.number,
            sku=line.sku,
            quantity=line.quantity,
            pincode=line.order.delivery_pincode,
            center=line.order.pickup_center,
        )
        for line in lines
    ]


@dataclass(frozen=True)
class Settled:
    substitution: Substitution
    # The order left `on_hold` for `processing`: the caller starts the rest of the pipeline.
    resumed: bool


def substitution_answer(
    *, client: ApiClient, order_id: uuid.UUID, substitution_id: uuid.UUID, accept: bool
) -> Settled:
    """The client's answer to a substitute offered for its order. Raises
    Substitution.DoesNotExist (not this client's order, or no such offer) and
    SubstitutionClosed (answered before, or expired); nothing changes then."""
    status = SS.ACCEPTED if accept else SS.DECLINED
    return _settle(
        Substitution.objects.filter(order__client=client, order_id=order_id),
        substitution_id,
        status,
    )


def substitution_expire(*, now: datetime.datetime | None = None) -> list[Settled]:
    """Settle as declined (`expired`) the offers the client left unanswered longer than
    COT_SUBSTITUTION_TIMEOUT_SECONDS. At most BATCH per call, oldest first; idempotent.
    Returns what expired."""
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(seconds=settings.COT_SUBSTITUTION_TIMEOUT_SECONDS)
    stale = list(
        Substitution.objects.filter(status=SS.PROPOSED, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("pk", flat=True)[:BATCH]
    )
    expired = []
    for substitution_id in stale:
        with contextlib.suppress(SubstitutionClosed):  # answered meanwhile
            expired.append(_settle(Substitution.objects.all(), substitution_id, SS.EXPIRED))
    return expired


def _settle(scope: QuerySet[Substitution], substitution_id: uuid.UUID, status: str) -> Settled:
    """Close one proposed substitution as `status` and apply it to its order, once."""
    with transaction.atomic():
        substitution = scope.get(pk=substitution_id)
        # The order row first, as the charge, cancels and drops take it.
        order = Order.objects.select_for_update().get(pk=substitution.order_id)
        closed = Substitution.objects.filter(pk=substitution.pk, status=SS.PROPOSED).update(
            status=status, answered_at=timezone.now(), updated_at=timezone.now()
        )
        if not closed:
            raise SubstitutionClosed(str(substitution_id))
        substitution.refresh_from_db()
        if order.status != S.ON_HOLD:
            return Settled(substitution, resumed=False)  # ended: its ending gave all back
        if status == SS.ACCEPTED and not _apply_accepted(order, substitution):
            # The substitute cannot be reserved any more: as if the client declined.
            Substitution.objects.filter(pk=substitution.pk).update(status=SS.DECLINED)
            substitution.refresh_from_db()
        if substitution.status != SS.ACCEPTED and not _apply_declined(order, substitution):
            return Settled(substitution, resumed=False)
    # Resumes (re-checking the prescription if its review's news is still on the way)
    # once nothing else holds the order: another offer still open keeps it on hold.
    return Settled(substitution, resumed=order_resume_after_review(order.pk) == RESUMED)


def _apply_accepted(order: Order, substitution: Substitution) -> bool:
    line = OrderLine.objects.get(pk=substitution.line_id)
    outcome = stock_swap_held_sku(
        order_id=order.pk,
        sku=substitution.sku,
        substitute_sku=substitution.substitute_sku,
        quantity=line.quantity,
        pincode=order.delivery_pincode,
        center=order.pickup_center,
    )
    if not outcome.ok:
        return False
    price = substitution.substitute_unit_price
    OrderLine.objects.filter(pk=line.pk).update(
        sku=substitution.substitute_sku,
        name=substitution.substitute_name,
        unit_price=price,
        line_total=to_money(price * line.quantity),
        substituted_for=substitution.sku,
    )
    # Booking and the H1 register read the stock step's allocations.
    stock = OrderStep.objects.select_for_update().filter(order=order, step=Step.STOCK).first()
    if stock is not None:
        data = {**stock.data, "allocations": [asdict(a) for a in outcome.allocations]}
        OrderStep.objects.filter(pk=stock.pk).update(data=data)
    active = OrderLine.objects.filter(order=order, status=LineStatus.ACTIVE)
    total = to_money(sum((l.line_total for l in active), start=0))
    Order.objects.filter(pk=order.pk).update(total_amount=total)
    payment_amount_set(order_id=order.pk, amount=total)
    order_event_record(
        order_id=order.pk,
        type=EventType.SUBSTITUTION_ACCEPTED,
        data={
            "id": str(substitution.pk),
            "sku": substitution.sku,
            "substitute_sku": substitution.substitute_sku,
            "price_difference": str(substitution.price_difference),
        },
    )
    return True


def _apply_declined(order: Order, substitution: Substitution) -> bool:
    """Drop the line (`ship_available`) or reject the order. True when the order goes on."""
    order_event_record(
        order_id=order.pk,
        type=EventType.SUBSTITUTION_DECLINED,
        data={
            "id": str(substitution.pk),
            "sku": substitution.sku,
            "substitute_sku": substitution.substitute_sku,
            "status": substitution.status,
        },
    )
    reason = FailureReason.SUBSTITUTION_DECLINED
    # order_lines_drop returns a reason (changing nothing) when no line would remain.
    partial = order.on_partial == OnPartial.SHIP_AVAILABLE
    if partial and order_lines_drop(order=order, dropped={substitution.sku: reason}) is None:
        return True
    order_end(order=order, to=S.REJECTED, reason=reason)
    return False
