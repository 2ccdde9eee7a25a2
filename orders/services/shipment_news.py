"""What the order makes of tracking news (logistics' `shipment_changed`, from the
partners' webhook). Runs inside the shipment's transaction, so the shipment's change and
the order's move commit together."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction

from core import metrics
from logistics.enums import ShipmentStatus
from logistics.selectors import shipment_all_delivered
from orders.enums import EventType, OrderStatus
from orders.models import Order
from orders.services.transitions import order_event_record, order_transition
from payments.services import payment_collect

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
    shipment picked up (or later) ships the order; the last one delivered delivers it (and
    cash on delivery is collected then). Never moves an order backwards: each move is
    compare-and-set from the statuses it may come from, so an order that was cancelled or
    is not yet confirmed stays as it is."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return
    awb = data.get("awb")
    if status in EVENTS:
        order_event_record(order_id=order.pk, type=EVENTS[status], data=_event_data(status, data))
    if status == SS.DELIVERED and shipment_all_delivered(order_id=order.pk):
        order_transition(
            order=order,
            to=S.DELIVERED,
            expected=frozenset({S.CONFIRMED, S.SHIPPED}),
            data={"awb": awb},
        )
        order.refresh_from_db(fields=["status"])
        if order.status == S.DELIVERED and payment_collect(order_id=order.pk):
            order_event_record(
                order_id=order.pk,
                type=EventType.PAYMENT_CAPTURED,
                data={"amount": str(order.total_amount), "method": "cod"},
            )
            amount = float(order.total_amount)
            transaction.on_commit(lambda: metrics.REVENUE_TOTAL.inc(amount))
        return
    if status not in NOT_SHIPPING:
        order_transition(order=order, to=S.SHIPPED, expected=S.CONFIRMED, data={"awb": awb})
