from __future__ import annotations

from django.db import models

from core.models import TimeStampedModel
from notifications.enums import NotificationChannel, NotificationStatus


class Notification(TimeStampedModel):
    """A message to a customer; at most one per order, event and channel."""

    order_id = models.UUIDField(db_index=True)
    event_type = models.CharField(max_length=40)
    channel = models.CharField(max_length=10, choices=NotificationChannel.choices)
    to = models.CharField(max_length=200)
    text = models.TextField()
    status = models.CharField(
        max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    provider_id = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["order_id", "event_type", "channel"], name="notification_unique_per_event"
            )
        ]
