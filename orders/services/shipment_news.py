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
DELIVERY_FAILED = "delivery_failed"


def order_shipment_changed(*, order_id: uuid.UUID, status: str, data: dict[str, Any]) -> None:
    """The first shipment that moves ships the order; the last one delivered delivers it
    (and cash on delivery is collected then); a failed delivery is flagged for ops.
    Never moves an order backwards: each move is compare-and-set from the statuses it may
    come from, so an order that was cancelled or is not yet confirmed stays as it is."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return
    awb = data.get("awb")
    if status == ShipmentStatus.FAILED:
        # The shipment keeps status `failed` (admin: "failed deliveries"); the order's
        # status says nothing new, its timeline does.
        order_event_record(
            order_id=order.pk,
            type=EventType.SHIPMENT_FAILED,
            data={"awb": awb, "reason": DELIVERY_FAILED},
        )
        return
    if status == ShipmentStatus.DELIVERED and shipment_all_delivered(order_id=order.pk):
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
    order_transition(order=order, to=S.SHIPPED, expected=S.CONFIRMED, data={"awb": awb})
