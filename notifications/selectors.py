"""Reads of notifications' own configuration, and the client's view of its webhook
deliveries."""

from __future__ import annotations

from django.db.models import QuerySet

from core.models import ApiClient
from notifications.caching import TimedValue
from notifications.messages import Message
from notifications.models import NotificationTemplate, WebhookDelivery

# Messages are rendered with the active templates read at most this often per process:
# an edit in admin shows in messages made at most this many seconds later.
TEMPLATES_SECONDS = 5.0


def _templates_load() -> dict[tuple[str, str], Message]:
    return {
        (t.event_type, t.channel): Message(t.subject, t.body)
        for t in NotificationTemplate.objects.filter(active=True)
    }


_templates = TimedValue(_templates_load, seconds=TEMPLATES_SECONDS)


def notification_templates_active() -> dict[tuple[str, str], Message]:
    """The active templates' source by (event, channel), as of at most
    TEMPLATES_SECONDS ago in this process."""
    return _templates.get()


def webhook_delivery_list_for_client(*, client: ApiClient) -> QuerySet[WebhookDelivery]:
    """The client's own webhook deliveries (those of its orders' events)."""
    return WebhookDelivery.objects.filter(client=client)


def webhook_delivery_get_for_client(
    *, client: ApiClient, delivery_id: int
) -> WebhookDelivery | None:
    return webhook_delivery_list_for_client(client=client).filter(pk=delivery_id).first()
