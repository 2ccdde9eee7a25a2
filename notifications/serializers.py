"""What the client's webhook-deliveries endpoints take and return."""

from __future__ import annotations

from rest_framework import serializers

from core.schema import cursor_page
from core.serializers import StrictSerializer
from notifications.enums import WebhookStatus


class WebhookDeliveryOut(serializers.Serializer):
    """One event on its way to the client's webhook URL."""

    id = serializers.IntegerField(help_text="The delivery's id (for `…/resend/`).")
    event_id = serializers.IntegerField(help_text="The event's id: the webhook body's `id`.")
    type = serializers.CharField(source="event_type", help_text="The event's type.")
    order_id = serializers.UUIDField()
    status = serializers.ChoiceField(
        choices=WebhookStatus.choices,
        help_text="`pending` (on its way or waiting for a retry), `delivered` (a 2xx "
        "came back), `failed` (retried for the whole retry window without a 2xx).",
    )
    attempts = serializers.IntegerField(help_text="POSTs since it was made or last resent.")
    last_status_code = serializers.IntegerField(
        allow_null=True, help_text="The HTTP status of the latest POST; null without one."
    )
    last_error = serializers.CharField(
        help_text="Why the latest POST failed (`HTTP 500`, a timeout, a refused URL); "
        "empty when it did not."
    )
    next_attempt_at = serializers.DateTimeField(
        allow_null=True, help_text="When the next POST is due; null once delivered or failed."
    )
    first_attempt_at = serializers.DateTimeField(
        allow_null=True, help_text="The first POST since it was made or last resent."
    )
    delivered_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


WebhookDeliveryPageOut = cursor_page(WebhookDeliveryOut, "WebhookDeliveryPage")


class WebhookDeliveryResendIn(StrictSerializer):
    """No fields: the body is empty or `{}`."""


class WebhookDeliveryListQueryIn(serializers.Serializer):
    """The list's query filters, as `notifications.filters.WebhookDeliveryFilter` reads
    them (a bad value is a 400 on it); for the schema."""

    status = serializers.ChoiceField(choices=WebhookStatus.choices, required=False)
    order_id = serializers.UUIDField(required=False)
