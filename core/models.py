"""The shared kernel's tables: the API clients every domain refers to."""

from __future__ import annotations

import secrets

from django.db import models
from rest_framework_api_key.models import AbstractAPIKey

from core.enums import Channel


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


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
    active = models.BooleanField(default=True)
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
