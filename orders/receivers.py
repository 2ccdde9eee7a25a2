"""What orders does when news arrives from a domain app (DESIGN §1: signals travel up;
the domain apps never import `orders`)."""

from __future__ import annotations

import uuid
from typing import Any

from logistics.signals import shipment_changed
from orders.enums import OrderStatus
from orders.models import Order
from orders.services.payment_news import order_payment_changed
from orders.services.shipment_news import order_shipment_changed
from payments.signals import payment_changed
from prescriptions.services import prescription_reviewed


def on_prescription_reviewed(sender: Any, prescription_id: uuid.UUID, **kwargs: Any) -> None:
    from orders import pipeline

    waiting = Order.objects.filter(prescription_id=prescription_id, status=OrderStatus.ON_HOLD)
    for order_id in waiting.values_list("pk", flat=True):
        pipeline.review_decided(order_id)


def on_payment_changed(
    sender: Any, order_id: uuid.UUID, status: str, data: dict[str, Any], **kwargs: Any
) -> None:
    order_payment_changed(order_id=order_id, status=status, data=data)


def on_shipment_changed(
    sender: Any, order_id: uuid.UUID, status: str, data: dict[str, Any], **kwargs: Any
) -> None:
    order_shipment_changed(order_id=order_id, status=status, data=data)


prescription_reviewed.connect(on_prescription_reviewed, dispatch_uid="orders.on_rx_reviewed")
payment_changed.connect(on_payment_changed, dispatch_uid="orders.on_payment_changed")
shipment_changed.connect(on_shipment_changed, dispatch_uid="orders.on_shipment_changed")
