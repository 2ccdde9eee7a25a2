from __future__ import annotations

from django.db import models

from core.models import ApiClient, TimeStampedModel
from notifications.enums import (
    NOTIFIED_EVENTS,
    NotificationChannel,
    NotificationStatus,
    WebhookStatus,
)
from notifications.messages import template_check
from orders.models import Order, OrderEvent


class Notification(TimeStampedModel):
    """A message to a customer; at most one per order, event and channel (per event for
    the events an order may have several of, `PER_EVENT`). The text is rendered once,
    when the row is created, so every retry sends the same message."""

    order_id = models.UUIDField(db_index=True)
    event_type = models.CharField(max_length=40)
    # The OrderEvent this message tells of, for PER_EVENT events; 0 for the others, which
    # an order has once (`notifications.enums.message_key`).
    event_id = models.BigIntegerField(default=0)
    channel = models.CharField(max_length=10, choices=NotificationChannel.choices)
    to = models.CharField(max_length=200)
    subject = models.CharField(max_length=200, blank=True)
    text = models.TextField()
    status = models.CharField(
        max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    provider_id = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Ops sent it again (the customer lost it, or it had failed): each resend goes out with
    # a key of its own, so the provider sends it rather than answering from its memory.
    resends = models.PositiveIntegerField(default=0)
    resent_by = models.CharField(max_length=150, blank=True)

    class Meta:
        permissions = [("resend_notification", "Can send a customer message again")]
        constraints = [
            models.UniqueConstraint(
                fields=["order_id", "event_type", "channel", "event_id"],
                name="notification_unique_per_message",
            )
        ]
        indexes = [
            # The sweeper's question, "which messages are pending and untouched for a
            # while?", over the few pending rows only.
            models.Index(
                fields=["updated_at"],
                condition=models.Q(status="pending"),
                name="notification_pending_updated",
            )
        ]


class NotificationTemplate(TimeStampedModel):
    """The admin-editable text of one event's message on one channel (Django template
    source, rendered with `notifications.messages.message_context`). Without an active,
    renderable template the built-in default is sent."""

    event_type = models.CharField(
        max_length=40, choices=[(event, event) for event in sorted(NOTIFIED_EVENTS)]
    )
    channel = models.CharField(max_length=10, choices=NotificationChannel.choices)
    subject = models.CharField(
        max_length=200, blank=True, help_text="E-mail only; a Django template like the body."
    )
    body = models.TextField(help_text="Django template source.")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["event_type", "channel"]
        constraints = [
            models.UniqueConstraint(
                fields=["event_type", "channel"], name="notificationtemplate_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} ({self.channel})"

    def clean(self) -> None:
        template_check(
            event_type=self.event_type, channel=self.channel, subject=self.subject, body=self.body
        )


class WebhookDelivery(TimeStampedModel):
    """One order event on its way to the order's client (outbound webhook). Rows are made
    from the timeline (OrderEvent is the outbox), sent one at a time per order in event
    order; `lease_until` keeps two workers from sending the same row at once."""

    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="+")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="+")
    event = models.OneToOneField(OrderEvent, on_delete=models.PROTECT, related_name="+")
    event_type = models.CharField(max_length=40)
    status = models.CharField(
        max_length=10, choices=WebhookStatus.choices, default=WebhookStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    # The retry window (COT_WEBHOOK_RETRY_WINDOW_SECONDS) runs from here; a resend starts
    # a new one.
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-event_id"]
        indexes = [
            models.Index(fields=["order", "status", "event"]),
            models.Index(fields=["status", "next_attempt_at"]),
            # The client's own list, newest first, whole or by status (the API).
            models.Index(fields=["client", "-id"], name="webhookdelivery_client_id"),
            models.Index(fields=["client", "status", "-id"], name="webhookdelivery_client_status"),
        ]
        permissions = [("resend_webhookdelivery", "Can resend webhook deliveries")]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.event_id}"


class WebhookAttempt(models.Model):
    """One POST of a delivery and what came back."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="tries")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["delivery", "number"]


class WebhookOutboxCursor(models.Model):
    """How far the sweeper has checked the timeline for events without a delivery row:
    every event with an id up to `event_id` has one (or belongs to a client without a
    webhook). A single row."""

    event_id = models.BigIntegerField(default=0)


class NotificationOutboxCursor(models.Model):
    """How far the sweeper has checked the timeline for customer-facing events without a
    message row: every such event with an id up to `event_id` has one (or its message was
    enqueued again). A single row."""

    event_id = models.BigIntegerField(default=0)
