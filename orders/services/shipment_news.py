"""What the order makes of tracking news (logistics' `shipment_changed`, from the
partners' webhook). Runs inside the shipment's transaction, so the shipment's change, the
order's move and what a returned parcel sets off (stock back, prescription quantities
back, the refund written) commit together, once."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from typing import Any

from django.db import transaction

from core import metrics
from inventory.enums import StockReturnOutcome
from inventory.services import stock_take_back
from logistics.enums import ShipmentStatus
from logistics.selectors import shipment_statuses, shipment_units
from orders.enums import EventType, OrderStatus
from orders.models import Order
from orders.services.transitions import order_event_record, order_events_record, order_transition
from payments.models import Payment
from payments.services import NotRefundable, payment_collect, refund_request
from prescriptions.services import ReturnedUnit, prescription_units_returned

logger = logging.getLogger(__name__)

S = OrderStatus
SS = ShipmentStatus
# The timeline event of each shipment status the courier reports.
EVENTS: dict[str, str] = {
    SS.PICKED_UP: EventType.SHIPMENT_PICKED_UP,
    SS.IN_TRANSIT: EventType.SHIPMENT_IN_TRANSIT,
    SS.OUT_FOR_DELIVERY: EventType.SHIPMENT_OUT_FOR_DELIVERY,
    SS.DELIVERED: EventType.SHIPMENT_DELIVERED,
    SS.DELIVERY_FAILED: EventType.SHIPMENT_DELIVERY_FAILED,
    SS.RETURNING: EventType.SHIPMENT_RETURNING,
    SS.RETURNED: EventType.SHIPMENT_RETURNED,
}
# Return to origin (returning, returned) moves no order status yet: only the timeline
# shows it. Every other update means the parcel left the centre: the order has shipped.
NOT_SHIPPING = frozenset({SS.BOOKED, SS.CANCELLED, SS.RETURNING, SS.RETURNED})


def _event_data(status: str, data: dict[str, Any]) -> dict[str, Any]:
    """What the timeline (and the customer's message) needs of the update."""
    event: dict[str, Any] = {"awb": data.get("awb")}
    if status == SS.PICKED_UP:
        event["tracking_url"] = data.get("tracking_url")
    if status in (SS.OUT_FOR_DELIVERY, SS.DELIVERED, SS.DELIVERY_FAILED):
        event["attempt"] = data.get("attempt")
    if status == SS.DELIVERY_FAILED:
        event["reason"] = data.get("reason")
    if data.get("by"):
        # Moved by hand by ops: who, and why.
        event["by"], event["note"] = data["by"], data.get("note", "")
    return event


def order_shipment_changed(*, order_id: uuid.UUID, status: str, data: dict[str, Any]) -> None:
    """Every update that moved a shipment goes into the order's timeline. The first
    shipment picked up (or later) ships the order. A parcel back at its centre (return to
    origin) gives its units back. Once every shipment has ended, the order ends with them:
    `returned` when all came back, else `delivered` (cash on delivery is collected then,
    for what was delivered). Never moves an order backwards: each move is compare-and-set
    from the statuses it may come from, so an order that was cancelled or is not yet
    confirmed stays as it is."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return
    awb = data.get("awb")
    if status in EVENTS:
        order_event_record(order_id=order.pk, type=EVENTS[status], data=_event_data(status, data))
    if status == SS.RETURNED and awb:
        _returned_to_origin(order, awb)
    if status in (SS.DELIVERED, SS.RETURNED) and _end_with_the_shipments(order, awb):
        return
    if status not in NOT_SHIPPING:
        order_transition(order=order, to=S.SHIPPED, expected=S.CONFIRMED, data={"awb": awb})


def _end_with_the_shipments(order: Order, awb: str | None) -> bool:
    """True when every shipment has ended (the order ends with them)."""
    statuses = shipment_statuses(order_id=order.pk)
    if not statuses or not statuses <= {SS.DELIVERED, SS.RETURNED}:
        return False  # a parcel is still on its way
    moving = frozenset({S.CONFIRMED, S.SHIPPED})
    if statuses == {SS.RETURNED}:
        order_transition(order=order, to=S.RETURNED, expected=moving, data={"awb": awb})
        return True
    order_transition(order=order, to=S.DELIVERED, expected=moving, data={"awb": awb})
    order.refresh_from_db(fields=["status"])
    if order.status == S.DELIVERED and payment_collect(order_id=order.pk):
        collected = _collected_amount(order)
        order_event_record(
            order_id=order.pk,
            type=EventType.PAYMENT_CAPTURED,
            data={"amount": str(collected), "method": "cod"},
        )
        transaction.on_commit(lambda: metrics.REVENUE_TOTAL.inc(float(collected)))
    return True


def _collected_amount(order: Order) -> Decimal:
    # What the courier collected: the amount due, less what came back undelivered.
    return Payment.objects.get(order_id=order.pk).amount


def _returned_to_origin(order: Order, awb: str) -> None:
    """The parcel came back undelivered: each unit back into its batch when it can still
    be sold, else written off (a record, never lost); the prescription quantities it drew
    given back (and the Schedule H1 register told); its lines refunded (cash on delivery:
    nothing was collected, the amount due shrinks)."""
    units = shipment_units(awb=awb)
    if not units:
        return
    reference = f"rto:{units[0].shipment_id}"
    prices = {line.sku: line.unit_price for line in order.lines.all()}
    events: list[tuple[str, dict[str, Any]]] = []
    amount = Decimal(0)
    for unit in units:
        taken = stock_take_back(
            order_id=order.pk,
            reference=reference,
            center=unit.center,
            sku=unit.sku,
            batch=unit.batch,
            quantity=unit.quantity,
        )
        restocked = taken.outcome == StockReturnOutcome.RESTOCKED
        events.append(
            (
                EventType.INVENTORY_RESTOCKED if restocked else EventType.INVENTORY_WRITTEN_OFF,
                {
                    "sku": unit.sku,
                    "batch": unit.batch,
                    "center": unit.center,
                    "quantity": unit.quantity,
                    "reason": taken.reason or None,
                    "reference": reference,
                },
            )
        )
        amount += prices.get(unit.sku, Decimal(0)) * unit.quantity
    order_events_record(order_id=order.pk, events=events)
    prescription_units_returned(
        order_id=order.pk,
        order_number=order.number,
        reference=reference,
        lines=[ReturnedUnit(sku=u.sku, batch=u.batch, quantity=u.quantity) for u in units],
    )
    if amount > 0:
        try:
            refund_request(
                order_id=order.pk,
                amount=amount,
                cause=reference,
                reason="returned to origin",
                token=order.payment_token,
            )
        except NotRefundable as exc:
            # Nothing was taken for these lines (or it went back already): nothing to do.
            logger.warning("order %s: no refund for the returned parcel (%s)", order.pk, exc)
