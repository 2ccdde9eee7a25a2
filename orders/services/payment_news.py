"""What the order makes of payment news it did not ask for (payments' `payment_changed`:
a gateway's late notice, an ops refund). Runs inside the payment's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from orders.enums import ENDED, EventType
from orders.models import Order
from orders.services.returns import return_refunded
from orders.services.transitions import order_event_record
from payments.enums import PaymentStatus


def order_payment_changed(*, order_id: uuid.UUID, status: str, data: dict[str, Any]) -> bool:
    """Record the news on the order's timeline. Returns True when the money must go back
    (captured for an order that already ended): the caller starts the compensation."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return False
    if status in (PaymentStatus.REFUNDED, PaymentStatus.PARTIALLY_REFUNDED):
        order_event_record(order_id=order.pk, type=EventType.PAYMENT_REFUNDED, data=data)
        # A return's refund (cause `return:<id>`) also moves that return to refunded.
        return_refunded(order_id=order.pk, data=data)
    elif status == PaymentStatus.CAPTURED and order.status in ENDED:
        # Money taken for an order that already ended (its charge's answer was lost):
        # record it, and compensation gives it back.
        order_event_record(order_id=order.pk, type=EventType.PAYMENT_CAPTURED, data=data)
        return True
    # A capture while the order is still processing is recorded by the charge step, which
    # finds the payment captured on its next try.
    return False
