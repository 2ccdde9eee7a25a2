"""The shared kernel's tables: the API clients every domain refers to."""

from __future__ import annotations

import datetime
import secrets

from django.core.validators import MaxValueValidator
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey

from core.enums import Channel


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


# A declined order holds its stock while it waits for another payment: a day at most.
MAX_PAYMENT_RETRY_SECONDS = 86400
# What a new API client may send per second (core/ratelimits.py); 0 means no limit.
DEFAULT_ORDERS_PER_SECOND = 20
DEFAULT_REQUESTS_PER_SECOND = 100


def _new_webhook_secret() -> str:
    return secrets.token_hex(32)


class ApiClient(TimeStampedModel):
    """A channel client (website, app, partner store) that places orders over the API."""

    name = models.CharField(max_length=100, unique=True)
    channel = models.CharField(max_length=20, choices=Channel.choices)
    webhook_url = models.URLField(blank=True, default="")
    webhook_secret = models.CharField(max_length=128, default=_new_webhook_secret)
    # After a rotation the replaced secret still signs deliveries, beside the new one,
    # until this time: the client switches its receiver over without losing a delivery.
    webhook_secret_previous = models.CharField(max_length=128, blank=True, default="")
    webhook_secret_previous_until = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    # How long after a declined payment the client may pay its order another way (the order
    # waits `awaiting_payment`, its stock reserved); 0: a decline fails the order at once.
    payment_retry_seconds = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_PAYMENT_RETRY_SECONDS)],
        help_text="Seconds a declined order waits for another payment method (0: off; at "
        "most a day). Its stock stays reserved meanwhile.",
    )
    orders_per_second = models.PositiveIntegerField(
        "order placements per second",
        default=DEFAULT_ORDERS_PER_SECOND,
        help_text=(
            "POST /api/v1/orders/ per second (idempotent replays included), counted across "
            "every API server; past it: 429 with Retry-After. 0: no limit."
        ),
    )
    requests_per_second = models.PositiveIntegerField(
        "requests per second",
        default=DEFAULT_REQUESTS_PER_SECOND,
        help_text=(
            "API requests of any kind per second (placements included), counted across "
            "every API server; past it: 429 with Retry-After. 0: no limit."
        ),
    )

    # The API authenticates a client, not a Django user: these let DRF's permission
    # classes treat it as the request's principal without pretending it is staff.
    is_authenticated = True
    is_anonymous = False
    is_staff = False

    def __str__(self) -> str:
        return f"{self.name} ({self.channel})"

    def webhook_signing_secrets(self, now: datetime.datetime) -> list[str]:
        """The secrets a delivery made at `now` is signed with: the current one first,
        then the replaced one while its grace period lasts."""
        secrets_ = [self.webhook_secret]
        until = self.webhook_secret_previous_until
        if self.webhook_secret_previous and until is not None and now < until:
            secrets_.append(self.webhook_secret_previous)
        return secrets_


class ClientAPIKey(AbstractAPIKey):
    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="api_keys")

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "client API key"
        verbose_name_plural = "client API keys"


class OutboundAttempt(TimeStampedModel):
    """One call to the outside world that must take effect at most once: one idempotency
    key at one peer, written before the call so that a retry reuses it (the protocol is
    `core.attempts`). A concrete attempt adds its foreign key to the row it acts for (the
    parent, whose row lock orders every claim) and the field naming its peer."""

    idempotency_key = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=12, default="started")
    response = models.JSONField(default=dict, blank=True)
    # How often the key was sent, and until when the process sending it now holds it: a
    # second process never sends the same attempt concurrently, and an attempt sent more
    # than once can never be declared "surely not processed".
    sends = models.PositiveIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["pk"]
