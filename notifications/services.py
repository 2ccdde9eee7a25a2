"""Customer messages for the order events that matter to a customer."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import transaction
from django.db.models import F

from core.http import post_json
from notifications.enums import NotificationChannel, NotificationStatus
from notifications.models import Notification
from orders.enums import EventType
from orders.models import Order
from orders.services.transitions import order_event_record

TEMPLATES: dict[str, str] = {
    EventType.ORDER_CONFIRMED: "Your order {number} is confirmed and will be delivered soon.",
    EventType.ORDER_REJECTED: "We could not accept your order {number} ({reason}).",
    EventType.PAYMENT_FAILED: "Payment for your order {number} did not go through ({reason}).",
    EventType.ORDER_SHIPPED: "Your order {number} is on its way.",
    EventType.ORDER_DELIVERED: "Your order {number} was delivered. Get well soon!",
    EventType.ORDER_CANCELLED: "Your order {number} was cancelled ({reason}).",
}


def notification_send_sms(*, order_id: uuid.UUID, event_type: str) -> Notification | None:
    """Send the event's SMS to the delivery phone, once. Raises ExternalError on provider
    trouble (the caller retries; the provider de-duplicates by the key)."""
    template = TEMPLATES.get(event_type)
    if template is None:
        return None
    order = Order.objects.get(pk=order_id)
    text = template.format(
        number=order.number, reason=(order.failure_reason or "").replace("_", " ")
    )
    notification, _ = Notification.objects.get_or_create(
        order_id=order.pk,
        event_type=event_type,
        channel=NotificationChannel.SMS,
        defaults={"to": order.delivery_address.get("phone", ""), "text": text},
    )
    if notification.status == NotificationStatus.SENT:
        return notification
    Notification.objects.filter(pk=notification.pk).update(attempts=F("attempts") + 1)
    body = post_json(
        "notify",
        f"{settings.NOTIFY_BASE_URL}/sms",
        {
            "to": notification.to,
            "text": notification.text,
            "idempotency_key": f"order:{order.pk}:notify:{event_type}:sms",
        },
    )
    with transaction.atomic():
        updated = Notification.objects.filter(
            pk=notification.pk, status=NotificationStatus.PENDING
        ).update(status=NotificationStatus.SENT, provider_id=str(body.get("id", "")))
        if updated:
            order_event_record(
                order_id=order.pk,
                type=EventType.NOTIFICATION_SENT,
                data={"channel": "sms", "event": event_type},
            )
    return notification


def notification_mark_failed(*, order_id: uuid.UUID, event_type: str) -> None:
    with transaction.atomic():
        updated = Notification.objects.filter(
            order_id=order_id,
            event_type=event_type,
            channel=NotificationChannel.SMS,
            status=NotificationStatus.PENDING,
        ).update(status=NotificationStatus.FAILED)
        if updated:
            order_event_record(
                order_id=order_id,
                type=EventType.NOTIFICATION_FAILED,
                data={"channel": "sms", "event": event_type},
            )
