"""Customer messages (SMS to the delivery phone, e-mail where the order has one) for the
order events that matter to a customer; at most one per order, event and channel."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from core.http import ExternalError, ExternalRejected, post_json
from notifications.enums import NotificationChannel, NotificationStatus
from notifications.messages import NOTIFIED_EVENTS, message_context, message_render
from notifications.models import Notification
from orders.enums import EventType
from orders.models import Order
from orders.services.transitions import order_event_record

logger = logging.getLogger(__name__)

ADDRESS_FIELD = {NotificationChannel.SMS: "phone", NotificationChannel.EMAIL: "email"}


def notification_send(*, order_id: uuid.UUID, event_type: str, channel: str) -> Notification | None:
    """Send the event's message on `channel`, once: the row (unique per order, event and
    channel) is made with the rendered text before the call, the provider de-duplicates by
    the idempotency key, and only one sender moves the row to `sent` and records
    `notification.sent`. None when there is nothing to send (event not notified, no
    address). Raises ExternalError on provider trouble; the caller retries."""
    notification = Notification.objects.filter(
        order_id=order_id, event_type=event_type, channel=channel
    ).first()
    return _send(
        order_id=order_id,
        event_type=event_type,
        channel=channel,
        notification=notification,
        order=_order_loader(order_id),
    )


def notification_send_all(*, order_id: uuid.UUID, event_type: str) -> None:
    """Send the event's message on every channel. A channel the provider refuses (4xx:
    a retry would be refused too) is marked failed at once; the other channels are still
    tried, then the first transient error is raised so the caller retries (channels
    already sent are skipped on the retry)."""
    if event_type not in NOTIFIED_EVENTS:
        return
    # One read for every channel's row, and the order only when a row is still to make.
    existing = {
        n.channel: n for n in Notification.objects.filter(order_id=order_id, event_type=event_type)
    }
    order = _order_loader(order_id)
    transient: ExternalError | None = None
    for channel in NotificationChannel.values:
        try:
            _send(
                order_id=order_id,
                event_type=event_type,
                channel=channel,
                notification=existing.get(channel),
                order=order,
            )
        except ExternalRejected as exc:
            logger.error("notification %s/%s refused: %s", event_type, channel, exc)
            notification_mark_failed(order_id=order_id, event_type=event_type, channel=channel)
        except ExternalError as exc:
            transient = transient or exc
    if transient is not None:
        raise transient


def _order_loader(order_id: uuid.UUID) -> Callable[[], Order]:
    return functools.cache(lambda: Order.objects.get(pk=order_id))


def _send(
    *,
    order_id: uuid.UUID,
    event_type: str,
    channel: str,
    notification: Notification | None,
    order: Callable[[], Order],
) -> Notification | None:
    """notification_send with the channel's row (None: not made yet) already read."""
    counted = False
    if notification is None:
        notification, counted = _notification_make(
            order=order(), event_type=event_type, channel=channel
        )
        if notification is None:
            return None
    if not counted:
        if notification.status != NotificationStatus.PENDING:
            return notification
        # The attempt is counted (committed) before the call; a row another sender has
        # sent or given up on since it was read is left alone.
        if not Notification.objects.filter(
            pk=notification.pk, status=NotificationStatus.PENDING
        ).update(attempts=F("attempts") + 1):
            return notification
    payload = {
        "to": notification.to,
        "text": notification.text,
        "idempotency_key": f"order:{order_id}:notify:{event_type}:{channel}",
        "reference": str(order_id),
    }
    if channel == NotificationChannel.EMAIL:
        payload["subject"] = notification.subject
    body = post_json("notify", f"{settings.NOTIFY_BASE_URL}/{channel}", payload)
    with transaction.atomic():
        updated = Notification.objects.filter(
            pk=notification.pk, status=NotificationStatus.PENDING
        ).update(status=NotificationStatus.SENT, provider_id=str(body.get("id", "")))
        if updated:
            order_event_record(
                order_id=order_id,
                type=EventType.NOTIFICATION_SENT,
                data={"channel": channel, "event": event_type},
            )
    return notification


def _notification_make(
    *, order: Order, event_type: str, channel: str
) -> tuple[Notification | None, bool]:
    """The channel's row, made with the rendered text and its first attempt counted in
    one INSERT: (row, True). When another sender made it first: (its row, False), whose
    text is what goes out. (None, False) when there is nothing to send."""
    to = str(order.delivery_address.get(ADDRESS_FIELD[channel]) or "")
    if not to:
        return None, False
    message = message_render(event_type=event_type, channel=channel, context=message_context(order))
    if message is None:
        return None, False
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                order_id=order.pk,
                event_type=event_type,
                channel=channel,
                to=to,
                subject=message.subject,
                text=message.body,
                attempts=1,
            )
    except IntegrityError:  # notification_unique_per_event: a concurrent sender won
        return Notification.objects.get(
            order_id=order.pk, event_type=event_type, channel=channel
        ), False
    return notification, True


def notification_mark_failed(
    *, order_id: uuid.UUID, event_type: str, channel: str | None = None
) -> int:
    """Give up on the event's pending messages (one channel, or all); records
    `notification.failed` once per message. Returns how many were given up."""
    pending = Notification.objects.filter(
        order_id=order_id, event_type=event_type, status=NotificationStatus.PENDING
    )
    if channel is not None:
        pending = pending.filter(channel=channel)
    failed = 0
    for notification in pending:
        with transaction.atomic():
            if Notification.objects.filter(
                pk=notification.pk, status=NotificationStatus.PENDING
            ).update(status=NotificationStatus.FAILED):
                failed += 1
                order_event_record(
                    order_id=order_id,
                    type=EventType.NOTIFICATION_FAILED,
                    data={"channel": notification.channel, "event": event_type},
                )
    return failed
