"""Cancellation by the client (API) or ops (admin), allowed until the order ships.

The order moves to `cancelled` compare-and-set from any status before `shipped`, and in
the same transaction its stock goes back (held stock released; committed stock of a
confirmed order put back on hand) and its prescription claims are returned (`order_end`).
The partner bookings are cancelled and the payment refunded or voided after commit, by the
retried compensation task. A pipeline step running meanwhile finds the order ended: the
charge and booking steps compensate again for what they did after the cancel.

Some units of a confirmed order can be cancelled instead, while the parcels holding them
are still booked (`order_lines_cancel`): the order stays confirmed with smaller lines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import F

from inventory.services import stock_release_units
from logistics.services import ParcelUnits, ShipmentNotBooked, shipment_units_cancel
from orders.enums import CANCELLABLE, EventType, FailureReason, LineStatus, OrderStatus
from orders.models import Order, OrderEvent, OrderLine
from orders.services.ending import order_end
from orders.services.transitions import InvalidTransition, order_event_record
from payments.services import NotRefundable, RefundExceedsCapture, refund_request
from prescriptions.services import ReturnedUnit, prescription_units_returned

logger = logging.getLogger(__name__)

CLIENT = "client"
OPS = "ops"
REASONS = {CLIENT: FailureReason.CANCELLED_BY_CLIENT, OPS: FailureReason.CANCELLED_BY_OPS}


def order_cancel(*, order: Order, by: str, actor: str, note: str = "") -> None:
    """Cancel `order` on behalf of `by` (`client` or `ops`); `actor` names who (an API
    client or a staff user) and `note` is their reason, both kept on the timeline.

    Raises InvalidTransition when the order has shipped or already ended, including when
    another actor moved it first: a second cancel is a 409, not a replay."""
    data = {"by": actor, "note": note}
    if order.status not in CANCELLABLE or not order_end(
        order=order, to=OrderStatus.CANCELLED, reason=REASONS[by], expected=CANCELLABLE, data=data
    ):
        order.refresh_from_db(fields=["status"])
        raise InvalidTransition(order.status, OrderStatus.CANCELLED)


@dataclass(frozen=True)
class LineCancel:
    sku: str
    quantity: int


class UnknownLine(Exception):
    """The order has no line of this sku (`index` is its place in the request)."""

    def __init__(self, index: int, sku: str) -> None:
        super().__init__(f"The order has no line {sku}.")
        self.index, self.sku = index, sku


class QuantityExceeded(Exception):
    def __init__(self, sku: str, asked: int, left: int) -> None:
        super().__init__(f"{asked} units of {sku} asked, {left} left on the line.")
        self.sku, self.asked, self.left = sku, asked, left


class AlreadyShipped(Exception):
    """A parcel holding the units was picked up (or is further on)."""


@dataclass(frozen=True)
class LinesCancelled:
    """What a partial cancel did: its number among the order's (`lines:<n>` names its
    refund and prescription give-back), the amount of the units; `whole` when they were
    every unit left, so the order itself was cancelled."""

    number: int
    amount: Decimal
    whole: bool = False


def order_lines_cancel(
    *, order: Order, lines: list[LineCancel], by: str, actor: str, note: str = ""
) -> LinesCancelled:
    """Cancel some units of a confirmed order whose parcels holding them are still booked,
    all in one transaction: the lines shrink (and the order's total), the units go back
    on the shelf and out of their parcels, prescribed quantities go back (H1 register
    told), and the refund of their price is written (cash on delivery: the amount due
    shrinks); after commit the partners hear what their parcels hold now. Lines covering
    every unit left cancel the whole order (`order_cancel`).

    Raises, changing nothing: `UnknownLine`, `QuantityExceeded`, `InvalidTransition`
    (the order is not confirmed), `AlreadyShipped`."""
    if len({wanted.sku for wanted in lines}) != len(lines) or any(
        wanted.quantity < 1 for wanted in lines
    ):
        raise ValueError("lines need distinct skus and quantities of at least 1")
    with transaction.atomic():
        # The order row first: of two partial cancels for the last units one waits here,
        # then finds them gone. Tracking news waits here too (it writes to the timeline),
        # so the parcels' statuses read below hold until commit.
        order = Order.objects.select_for_update().get(pk=order.pk)
        # A dropped line was never reserved nor charged: there is nothing of it to cancel.
        active = OrderLine.objects.filter(order=order, status=LineStatus.ACTIVE)
        by_sku = {line.sku: line for line in active}
        for index, wanted in enumerate(lines):
            if wanted.sku not in by_sku:
                raise UnknownLine(index, wanted.sku)
        if order.status != OrderStatus.CONFIRMED:
            raise InvalidTransition(order.status, OrderStatus.CANCELLED)
        for wanted in lines:
            left = by_sku[wanted.sku].quantity
            if wanted.quantity > left:
                raise QuantityExceeded(wanted.sku, wanted.quantity, left)
        asked = {wanted.sku: wanted.quantity for wanted in lines}
        if all(asked.get(sku, 0) == line.quantity for sku, line in by_sku.items()):
            order_cancel(order=order, by=by, actor=actor, note=note)
            return LinesCancelled(number=0, amount=order.total_amount, whole=True)
        number = (
            OrderEvent.objects.filter(order=order, type=EventType.ORDER_LINES_CANCELLED).count() + 1
        )
        reference = f"lines:{number}"
        released = [
            allocation
            for wanted in lines
            for allocation in stock_release_units(
                order_id=order.pk, sku=wanted.sku, quantity=wanted.quantity
            )
        ]
        try:
            shipment_units_cancel(
                order_id=order.pk,
                units=[ParcelUnits(a.center, a.sku, a.batch, a.quantity) for a in released],
                number=number,
            )
        except ShipmentNotBooked as exc:
            raise AlreadyShipped(str(exc)) from exc
        amount = Decimal(0)
        for wanted in lines:
            line = by_sku[wanted.sku]
            amount += line.unit_price * wanted.quantity
            # Read under the order's lock: nobody else changes the lines meanwhile.
            left = line.quantity - wanted.quantity
            OrderLine.objects.filter(pk=line.pk).update(
                quantity=left,
                cancelled_quantity=line.cancelled_quantity + wanted.quantity,
                line_total=line.unit_price * left,
            )
        Order.objects.filter(pk=order.pk).update(total_amount=F("total_amount") - amount)
        prescription_units_returned(
            order_id=order.pk,
            order_number=order.number,
            reference=reference,
            lines=[ReturnedUnit(sku=a.sku, batch=a.batch, quantity=a.quantity) for a in released],
        )
        _refund(order, amount, reference, note=note, actor=actor)
        order_event_record(
            order_id=order.pk,
            type=EventType.ORDER_LINES_CANCELLED,
            data={
                "lines": [{"sku": w.sku, "quantity": w.quantity} for w in lines],
                "amount": str(amount),
                "by": actor,
                "note": note,
            },
        )
    return LinesCancelled(number=number, amount=amount)


def _refund(order: Order, amount: Decimal, cause: str, *, note: str, actor: str) -> None:
    """Ask for the units' money back (cash on delivery not yet collected: the amount due
    shrinks instead)."""
    try:
        refund_request(
            order_id=order.pk,
            amount=amount,
            cause=cause,
            reason=note,
            by=actor,
            token=order.payment_token,
        )
    except RefundExceedsCapture as exc:
        # Ops refunded part of the payment already: what is left of it goes back.
        logger.warning("order %s: refunding what is left (%s)", order.pk, exc)
        if exc.left > 0:
            refund_request(
                order_id=order.pk,
                amount=exc.left,
                cause=cause,
                reason=note,
                by=actor,
                token=order.payment_token,
            )
    except NotRefundable as exc:
        logger.warning("order %s: no refund for the cancelled lines (%s)", order.pk, exc)
