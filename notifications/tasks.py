"""Thin tasks: customer messages and outbound webhooks, each retried on its own so a
slow provider or a dead client endpoint never holds up an order."""

from __future__ import annotations

import logging
import random
import uuid

from celery import Task, shared_task
from django.conf import settings

from core.http import ExternalError
from notifications.services.messages import (
    notification_mark_failed,
    notification_outbox_sweep,
    notification_send_all,
)
from notifications.services.webhooks import webhook_order_pump, webhook_outbox_sweep

logger = logging.getLogger(__name__)


# Nothing reads its return value (the outcome is the Notification row and the order's
# `notification.sent` event): storing it was a Redis SET + PUBLISH per message. A caller
# that wants to wait for one delivery asks with `send_task(..., ignore_result=False)`.
@shared_task(bind=True, name="notifications.notify_customer", max_retries=8, ignore_result=True)
def notify_customer(self: Task, order_id: str, event_type: str, event_id: int = 0) -> None:
    # `event_id` tells which of an order's several events of a type (PER_EVENT) the
    # message is for; tasks enqueued before it existed have none, and need none.
    try:
        notification_send_all(
            order_id=uuid.UUID(order_id), event_type=event_type, event_id=event_id
        )
    except ExternalError as exc:
        if self.request.retries >= self.max_retries:
            notification_mark_failed(
                order_id=uuid.UUID(order_id), event_type=event_type, event_id=event_id
            )
            return
        # Exponential with jitter: 2, 4, 8 ... seconds, capped.
        ceiling = min(settings.COT_MAX_COUNTDOWN_SECONDS, 2 ** (self.request.retries + 1))
        raise self.retry(exc=exc, countdown=random.uniform(ceiling / 2, ceiling)) from exc


@shared_task(name="notifications.webhook_pump", ignore_result=True)
def webhook_pump(order_id: str) -> None:
    delay = webhook_order_pump(order_id=uuid.UUID(order_id))
    # A retry due within COT_MAX_COUNTDOWN_SECONDS waits in the broker. A later one waits
    # in the database only (its next_attempt_at): the sweeper pumps the order once it is
    # due, since a countdown past the broker's visibility timeout would be sent twice.
    if delay is not None and delay <= settings.COT_MAX_COUNTDOWN_SECONDS:
        webhook_pump.apply_async((order_id,), countdown=delay)


@shared_task(name="notifications.webhook_sweep")
def webhook_sweep() -> int:
    orders = webhook_outbox_sweep()
    for order_id in orders:
        webhook_pump.delay(str(order_id))
    if orders:
        logger.info("webhook sweep: %d orders to pump", len(orders))
    return len(orders)


@shared_task(name="notifications.notification_sweep", ignore_result=True)
def notification_sweep() -> int:
    """Enqueue again the customer messages whose task was lost."""
    messages = notification_outbox_sweep()
    for order_id, event_type, event_id in messages:
        notify_customer.delay(str(order_id), event_type, event_id)
    if messages:
        logger.info("notification sweep: %d messages enqueued again", len(messages))
    return len(messages)
