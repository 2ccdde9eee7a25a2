"""Subscribes to the order timeline (after commit). Enqueueing is all that happens here:
a failing notification or webhook never blocks the order, and a broker that is down
loses no webhook (the sweeper finds the event in the timeline)."""

from __future__ import annotations

import functools
import logging
import uuid
from typing import Any

from core.models import ApiClient
from notifications.caching import TimedValue
from notifications.enums import NOTIFIED_EVENTS
from notifications.tasks import notify_customer, webhook_pump
from orders.models import Order
from orders.services.transitions import order_event_committed

logger = logging.getLogger(__name__)

# How stale this process's view of which clients have a webhook URL may be. Staleness
# only delays a webhook, never loses one: an event whose pump was not enqueued here (its
# client's URL was set moments ago) has no delivery row, and the sweeper's next run
# (every COT_SWEEP_INTERVAL_SECONDS) makes the row and pumps the order; it looks at every
# event younger than COT_WEBHOOK_OUTBOX_LAG_SECONDS (600). A URL removed moments ago
# costs one pump that finds no URL and sends nothing.
WEBHOOK_CLIENTS_SECONDS = 5.0


def _webhook_client_ids() -> frozenset[int]:
    return frozenset(ApiClient.objects.exclude(webhook_url="").values_list("pk", flat=True))


_webhook_clients = TimedValue(_webhook_client_ids, seconds=WEBHOOK_CLIENTS_SECONDS)


@functools.lru_cache(maxsize=4096)
def _order_client_id(order_id: uuid.UUID) -> int | None:
    # An order never changes client, so this needs no expiry; bounded, and an order's
    # events come close together, so its entry is there for all of them.
    return Order.objects.filter(pk=order_id).values_list("client_id", flat=True).first()


def on_order_event(
    sender: Any, order_id: uuid.UUID, event_type: str, event_id: int = 0, **kwargs: Any
) -> None:
    # Only the events a customer hears about: a message's own `notification.sent` (and
    # `.failed`) is announced too, and must not start another message.
    if event_type not in NOTIFIED_EVENTS:
        return
    try:
        notify_customer.delay(str(order_id), event_type, event_id)
    except Exception:  # the broker being down must not fail the step that ended the order
        logger.exception("could not enqueue notification for order %s", order_id)


def on_order_event_webhook(sender: Any, order_id: uuid.UUID, **kwargs: Any) -> None:
    # No statement at all while no client has a webhook URL; else one per order (and
    # process) for its client, then none for the order's other events.
    try:
        hooked = _webhook_clients.get()
        if hooked and _order_client_id(order_id) in hooked:
            webhook_pump.delay(str(order_id))
    except Exception:
        logger.exception("could not enqueue the webhook pump for order %s", order_id)


order_event_committed.connect(on_order_event, dispatch_uid="notifications.on_order_event")
order_event_committed.connect(
    on_order_event_webhook, dispatch_uid="notifications.on_order_event_webhook"
)
