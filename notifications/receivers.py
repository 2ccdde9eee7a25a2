"""Subscribes to the order timeline (after commit). Enqueueing is all that happens here:
a failing notification or webhook never blocks the order, and a broker that is down
loses no webhook (the sweeper finds the event in the timeline)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from notifications.messages import NOTIFIED_EVENTS
from notifications.tasks import notify_customer, webhook_pump
from orders.models import Order
from orders.services.transitions import order_event_committed

logger = logging.getLogger(__name__)


def on_order_event(sender: Any, order_id: uuid.UUID, event_type: str, **kwargs: Any) -> None:
    if event_type not in NOTIFIED_EVENTS:
        return
    try:
        notify_customer.delay(str(order_id), event_type)
    except Exception:  # the broker being down must not fail the step that ended the order
        logger.exception("could not enqueue notification for order %s", order_id)


def on_order_event_webhook(sender: Any, order_id: uuid.UUID, **kwargs: Any) -> None:
    try:
        if Order.objects.filter(pk=order_id).exclude(client__webhook_url="").exists():
            webhook_pump.delay(str(order_id))
    except Exception:
        logger.exception("could not enqueue the webhook pump for order %s", order_id)


order_event_committed.connect(on_order_event, dispatch_uid="notifications.on_order_event")
order_event_committed.connect(
    on_order_event_webhook, dispatch_uid="notifications.on_order_event_webhook"
)
