"""Subscriptions to news from the domain apps (DESIGN §1: they never import `orders`)."""

from __future__ import annotations

import uuid
from typing import Any

from orders.services.payment_news import order_payment_changed
from payments.signals import payment_changed


def on_payment_changed(
    sender: Any, order_id: uuid.UUID, status: str, data: dict[str, Any], **kwargs: Any
) -> None:
    order_payment_changed(order_id=order_id, status=status, data=data)


payment_changed.connect(on_payment_changed, dispatch_uid="orders.on_payment_changed")
