"""Reads of notifications' own configuration."""

from __future__ import annotations

from notifications.caching import TimedValue
from notifications.messages import Message
from notifications.models import NotificationTemplate

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
