"""What the order makes of payment news it did not ask for (payments' `payment_changed`:
a gateway's late notice, an ops refund). Runs inside the payment's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction

from orders.enums import EventType
from orders.models import Order
from orders.services.steps import ENDED
from orders.services.transitions import order_event_record
from payments.enums import PaymentStatus


def order_payment_changed(*, order_id: uuid.UUID, status: str, data: dict[str, Any]) -> None:
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return
    if status == PaymentStatus.REFUNDED:
        order_event_record(order_id=order.pk, type=EventType.PAYMENT_REFUNDED, data=data)
    elif status == PaymentStatus.CAPTURED and order.status in ENDED:
        # Money taken for an order that already ended (its charge's answer was lost):
        # record it, and compensation gives it back.
        order_event_record(order_id=order.pk, type=EventType.PAYMENT_CAPTURED, data=data)
        from orders import pipeline

        transaction.on_commit(lambda: pipeline.compensate(order.pk))
    # A capture while the order is still processing is recorded by the charge step, which
    # finds the payment captured on its next try.
