"""Subscribes to the order timeline; a failing notification never blocks the order."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from notifications.services import TEMPLATES
from notifications.tasks import notify_customer
from orders.services.transitions import order_event_committed

logger = logging.getLogger(__name__)


def on_order_event(sender: Any, order_id: uuid.UUID, event_type: str, **kwargs: Any) -> None:
    if event_type not in TEMPLATES:
        return
    try:
        notify_customer.delay(str(order_id), event_type)
    except Exception:  # the broker being down must not fail the step that ended the order
        logger.exception("could not enqueue notification for order %s", order_id)


order_event_committed.connect(on_order_event, dispatch_uid="notifications.on_order_event")
