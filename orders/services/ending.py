"""Ending an order that cannot go on, and undoing what it did outside (compensation).

Ending moves the order compare-and-set and gives its stock and prescription claims back
in the same transaction. The outside undo (bookings, then the payment) is a separate,
retried job: `order_compensate`, started after commit by the subscriber of the order's
ending events (orders/receivers.py), so no caller can forget it.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction

from core.http import ExternalError
from inventory.services import stock_release, stock_restock
from logistics.services import shipment_cancel
from orders.enums import ENDABLE, ENDED, EventType, Step
from orders.models import Order, OrderStep
from orders.services.transitions import STATUS_EVENTS, order_event_record, order_transition
from payments.services import payment_cancel
from prescriptions.services import (
    ReturnedUnit,
    prescription_return,
    prescription_units_returned,
)

# The timeline events that say an order ended: each one starts its compensation.
ENDING_EVENTS = frozenset(STATUS_EVENTS[status] for status in ENDED)


def order_end(
    *,
    order: Order,
    to: str,
    reason: str,
    expected: frozenset[str] = ENDABLE,
    data: dict[str, Any] | None = None,
) -> bool:
    """End an order that cannot go on: move it (compare-and-set) and give its stock back
    in the same transaction; its ending event starts the compensation after commit.
    `data` is added to the status and release events (e.g. why the order ended)."""
    with transaction.atomic():
        moved = order_transition(
            order=order, to=to, expected=expected, failure_reason=reason, data=data
        )
        if not moved:
            return False
        if stock_release(order_id=order.pk):
            order_event_record(order_id=order.pk, type=EventType.INVENTORY_RELEASED, data=data)
        elif stock_restock(order_id=order.pk):
            # A confirmed (or ready for pickup) order's stock left the shelf when it was
            # committed: it goes back.
            order_event_record(
                order_id=order.pk,
                type=EventType.INVENTORY_RELEASED,
                data={**(data or {}), "restocked": True},
            )
            _committed_units_returned(order)
        prescription_return(order_id=order.pk)
    return True


def _committed_units_returned(order: Order) -> None:
    """The units of an order cancelled after its stock was committed never reached the
    customer: the Schedule H1 register, which recorded them as dispensed, gets its
    `returned` rows beside those (as for cancelled lines); the prescription quantities go
    back with them."""
    if order.prescription_id is None:
        return
    stock = OrderStep.objects.filter(order=order, step=Step.STOCK).values_list("data", flat=True)
    allocations = (stock.first() or {}).get("allocations", [])
    units = [
        ReturnedUnit(sku=a["sku"], batch=a["batch"], quantity=a["quantity"]) for a in allocations
    ]
    if units:
        prescription_units_returned(
            order_id=order.pk, order_number=order.number, reference="cancel", lines=units
        )


def order_compensate(order_id: uuid.UUID) -> None:
    """Undo the outside effects of an ended order: bookings, then the payment, then any
    stock still held. Idempotent; raises on outside trouble so the caller retries. Each
    undo is tried even when an earlier one fails, so a courier that cannot be reached
    delays the cancellation of its booking, not the customer's refund."""
    order = Order.objects.get(pk=order_id)
    if order.status not in ENDED:
        return
    failures: list[ExternalError] = []
    try:
        shipment_cancel(order_id=order.pk)
    except ExternalError as exc:
        failures.append(exc)
    try:
        # The token lets payments settle a charge whose outcome is still unknown before it
        # decides between void and refund. A refund reaches the timeline (payment.refunded)
        # in the refund's own transaction, through payments' `payment_changed`.
        payment_cancel(order_id=order.pk, token=order.payment_token)
    except ExternalError as exc:
        failures.append(exc)
    if stock_release(order_id=order.pk):
        order_event_record(order_id=order.pk, type=EventType.INVENTORY_RELEASED)
    # A charge step that claimed prescribed quantities just after the order ended (its
    # status check and its claim are not one transaction) is caught here.
    prescription_return(order_id=order.pk)
    if failures:
        raise failures[0]
