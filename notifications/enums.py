from django.db import models

from orders.enums import EventType


class NotificationChannel(models.TextChoices):
    SMS = "sms", "SMS"
    EMAIL = "email", "E-mail"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class WebhookStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (attempts used up)"


# The order events a customer hears about, on every channel. A message's own events
# (`notification.sent`, `notification.failed`) are announced like any other but are not
# among these, so recording one never starts another message.
NOTIFIED_EVENTS: frozenset[str] = frozenset(
    {
        EventType.ORDER_CONFIRMED,
        EventType.ORDER_REJECTED,
        EventType.PAYMENT_FAILED,
        EventType.ORDER_SHIPPED,
        EventType.ORDER_DELIVERED,
        EventType.ORDER_CANCELLED,
    }
)
