"""Customer messages (SMS to the delivery phone, or a pickup order's contact phone; e-mail
where the order has one) for the order events that matter to a customer; at most one per
order, event and channel, or per event and channel for the events an order may have
several of (`PER_EVENT`)."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import BigIntegerField, Case, Exists, F, OuterRef, QuerySet, Value, When
from django.utils import timezone

from core.http import ExternalError, ExternalRejected, post_json
from notifications.enums import (
    NOTIFIED_EVENTS,
    PER_EVENT,
    NotificationChannel,
    NotificationStatus,
    message_key,
)
from notifications.messages import message_context, message_render
from notifications.models import Notification, NotificationOutboxCursor
from notifications.selectors import notification_templates_active
from notifications.services.outbox import outbox_cursor_advance
from orders.enums import EventType
from orders.models import Order, OrderEvent
from orders.services.transitions import order_event_record

logger = logging.getLogger(__name__)

ADDRESS_FIELD = {NotificationChannel.SMS: "phone", NotificationChannel.EMAIL: "email"}
CHANNELS = tuple(NotificationChannel.values)


def notification_send(
    *, order_id: uuid.UUID, event_type: str, channel: str, event_id: int = 0
) -> Notification | None:
    """Send the event's message on `channel`, once: the row (unique per order, event and
    channel, and `event_id` for PER_EVENT events) is made with the rendered text before
    the call, the provider de-duplicates by the idempotency key, and only one sender moves
    the row to `sent` and records `notification.sent`. None when there is nothing to send
    (event not notified, no address). Raises ExternalError on provider trouble; the
    caller retries."""
    key = message_key(event_type, event_id)
    notification = Notification.objects.filter(
        order_id=order_id, event_type=event_type, channel=channel, event_id=key
    ).first()
    return _send(
        order_id=order_id,
        event_type=event_type,
        channel=channel,
        key=key,
        notification=notification,
        order=_order_loader(order_id),
    )


def notification_send_all(*, order_id: uuid.UUID, event_type: str, event_id: int = 0) -> None:
    """Send the event's message on every channel. A channel the provider refuses (4xx:
    a retry would be refused too) is marked failed at once; the other channels are still
    tried, then the first transient error is raised so the caller retries (channels
    already sent are skipped on the retry)."""
    if event_type not in NOTIFIED_EVENTS:
        return
    key = message_key(event_type, event_id)
    if event_type in PER_EVENT and not key:
        # Which parcel or attempt is not known: better no message than a wrong one.
        logger.error("no event id for a %s message of order %s", event_type, order_id)
        return
    # One read for every channel's row, and the order only when a row is still to make.
    rows = Notification.objects.filter(order_id=order_id, event_type=event_type, event_id=key)
    existing = {n.channel: n for n in rows}
    order = _order_loader(order_id)
    transient: ExternalError | None = None
    for channel in CHANNELS:
        try:
            _send(
                order_id=order_id,
                event_type=event_type,
                channel=channel,
                key=key,
                notification=existing.get(channel),
                order=order,
            )
        except ExternalRejected as exc:
            logger.error("notification %s/%s refused: %s", event_type, channel, exc)
            notification_mark_failed(
                order_id=order_id, event_type=event_type, channel=channel, event_id=key
            )
        except ExternalError as exc:
            transient = transient or exc
    if transient is not None:
        raise transient


def _order_loader(order_id: uuid.UUID) -> Callable[[], Order]:
    # What making a message reads of the order (message_context, the address).
    return functools.cache(
        lambda: Order.objects.only(
            "number",
            "status",
            "failure_reason",
            "delivery_address",
            "contact",
            "fulfilment",
            "pickup_center",
            "currency",
            "total_amount",
        ).get(pk=order_id)
    )


def _send(
    *,
    order_id: uuid.UUID,
    event_type: str,
    channel: str,
    key: int,
    notification: Notification | None,
    order: Callable[[], Order],
) -> Notification | None:
    """notification_send with the message's key (`message_key`) and the channel's row
    (None: not made yet) already read."""
    counted = False
    if notification is None:
        notification, counted = _notification_make(
            order=order(), event_type=event_type, channel=channel, key=key
        )
        if notification is None:
            return None
    if not counted:
        if notification.status != NotificationStatus.PENDING:
            return notification
        # The attempt is counted (committed) before the call; a row another sender has
        # sent or given up on since it was read is left alone. updated_at is the last
        # attempt's time: the sweeper re-enqueues a message left pending and untouched for
        # longer than any retry waits.
        if not _pending(notification).update(attempts=F("attempts") + 1, updated_at=timezone.now()):
            return notification
    idempotency_key = f"order:{order_id}:notify:{event_type}:{channel}"
    if key:
        idempotency_key += f":{key}"
    if notification.resends:
        idempotency_key += f":resend:{notification.resends}"
    payload = {
        "to": notification.to,
        "text": notification.text,
        "idempotency_key": idempotency_key,
        "reference": str(order_id),
    }
    if channel == NotificationChannel.EMAIL:
        payload["subject"] = notification.subject
    body = post_json("notify", f"{settings.NOTIFY_BASE_URL}/{channel}", payload)
    _mark_sent(
        notification,
        provider_id=str(body.get("id", "")),
        channel=channel,
        event_type=event_type,
        key=key,
    )
    return notification


def _pending(notification: Notification) -> QuerySet[Notification]:
    return Notification.objects.filter(pk=notification.pk, status=NotificationStatus.PENDING)


def _mark_sent(
    notification: Notification, *, provider_id: str, channel: str, event_type: str, key: int
) -> None:
    """Mark the row sent and record `notification.sent`, once: only the sender that moves
    the row from pending (compare-and-set) records the event, in the same transaction."""
    with transaction.atomic():
        if _pending(notification).update(
            status=NotificationStatus.SENT, provider_id=provider_id, updated_at=timezone.now()
        ):
            data = _told(channel=channel, event_type=event_type, key=key)
            if notification.resends:
                data["resent_by"] = notification.resent_by
            order_event_record(
                order_id=notification.order_id, type=EventType.NOTIFICATION_SENT, data=data
            )


def _told(*, channel: str, event_type: str, key: int) -> dict[str, Any]:
    # `notification.sent`/`.failed` data; which of several events, where there are several.
    data: dict[str, Any] = {"channel": channel, "event": event_type}
    if key:
        data["event_id"] = key
    return data


def _notification_make(
    *, order: Order, event_type: str, channel: str, key: int
) -> tuple[Notification | None, bool]:
    """The channel's row, made with the rendered text and its first attempt counted:
    (row, True). When another sender made it first: (its row, False), whose
    text is what goes out. (None, False) when there is nothing to send."""
    to = str(order.recipient.get(ADDRESS_FIELD[channel]) or "")
    if not to:
        return None, False
    event = None
    if key:
        # The event's own data (its parcel, its attempt): what this message tells of.
        event = (
            OrderEvent.objects.filter(pk=key, order_id=order.pk)
            .values_list("data", flat=True)
            .first()
        )
        if event is None:
            logger.error("order %s has no event %s to tell of", order.pk, key)
            return None, False
    message = message_render(
        event_type=event_type,
        channel=channel,
        context=message_context(order, event),
        template=notification_templates_active().get((event_type, channel)),
    )
    if message is None:
        return None, False
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                order_id=order.pk,
                event_type=event_type,
                channel=channel,
                event_id=key,
                to=to,
                subject=message.subject,
                text=message.body,
                attempts=1,
            )
    except IntegrityError:  # notification_unique_per_event: a concurrent sender won
        winner = Notification.objects.get(
            order_id=order.pk, event_type=event_type, channel=channel, event_id=key
        )
        return winner, False
    return notification, True


def notification_resend(*, notification_id: int, by: str) -> bool:
    """Send a message again, with the text it had (ops, when a customer lost it or it
    failed). It goes back to pending with a new key; the caller enqueues its send after
    commit. False when it is still pending (its first send is under way)."""
    return bool(
        Notification.objects.filter(pk=notification_id)
        .exclude(status=NotificationStatus.PENDING)
        .update(
            status=NotificationStatus.PENDING,
            attempts=0,
            resends=F("resends") + 1,
            resent_by=by[:150],
            updated_at=timezone.now(),
        )
    )


def notification_mark_failed(
    *, order_id: uuid.UUID, event_type: str, channel: str | None = None, event_id: int = 0
) -> int:
    """Give up on the event's pending messages (one channel, or all); records
    `notification.failed` once per message. Returns how many were given up."""
    key = message_key(event_type, event_id)
    pending = Notification.objects.filter(
        order_id=order_id, event_type=event_type, event_id=key, status=NotificationStatus.PENDING
    )
    if channel is not None:
        pending = pending.filter(channel=channel)
    failed = 0
    for notification in pending:
        with transaction.atomic():
            if _pending(notification).update(status=NotificationStatus.FAILED):
                failed += 1
                order_event_record(
                    order_id=order_id,
                    type=EventType.NOTIFICATION_FAILED,
                    data=_told(channel=notification.channel, event_type=event_type, key=key),
                )
    return failed


def notification_outbox_sweep(*, batch: int = 500) -> set[tuple[uuid.UUID, str, int]]:
    """The (order, event type, event id) whose customer message must be enqueued again
    (the id is 0 where an order has one message for the type): events the
    customer hears about that have no message row (their task was lost between the
    event's commit and its enqueue, or with a Redis that restarted empty), and messages
    still pending and untouched for longer than any retry waits (a lost retry).
    `notification_send_all` sends each channel once whatever the number of enqueues.

    Events are read past a cursor that only moves over events older than
    `COT_WEBHOOK_OUTBOX_LAG_SECONDS`, as for webhooks; an event is left alone for its
    first `COT_NOTIFICATION_SWEEP_GRACE_SECONDS`, while its own task is still due."""
    now = timezone.now()
    cursor, _ = NotificationOutboxCursor.objects.get_or_create(pk=1)
    grace = now - timedelta(seconds=settings.COT_NOTIFICATION_SWEEP_GRACE_SECONDS)
    messaged = Notification.objects.filter(
        order_id=OuterRef("order_id"), event_type=OuterRef("type"), event_id=OuterRef("key")
    )
    missing = list(
        OrderEvent.objects.filter(pk__gt=cursor.event_id, type__in=NOTIFIED_EVENTS, at__lt=grace)
        # message_key, in SQL
        .annotate(
            key=Case(
                When(type__in=PER_EVENT, then=F("pk")),
                default=Value(0),
                output_field=BigIntegerField(),
            )
        )
        .filter(~Exists(messaged))
        .order_by("pk")
        .values_list("pk", "order_id", "type", "key")[:batch]
    )
    outbox_cursor_advance(
        NotificationOutboxCursor,
        cursor=cursor.event_id,
        now=now,
        batch_end=missing[-1][0] if len(missing) == batch else None,
    )
    # A retry waits at most COT_MAX_COUNTDOWN_SECONDS; twice that untouched means lost.
    stale = now - timedelta(seconds=2 * settings.COT_MAX_COUNTDOWN_SECONDS)
    pending = Notification.objects.filter(
        status=NotificationStatus.PENDING, updated_at__lt=stale
    ).values_list("order_id", "event_type", "event_id")[:batch]
    return {(order_id, event_type, key) for _, order_id, event_type, key in missing} | set(pending)
