"""Writes to the API clients: their keys and webhook secrets. The management commands
and the admin call these."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.models import ApiClient, ClientAPIKey, _new_webhook_secret

logger = logging.getLogger(__name__)

DEFAULT_GRACE = timedelta(hours=24)


@transaction.atomic
def api_key_rotate(*, client: ApiClient, grace: timedelta = DEFAULT_GRACE) -> str:
    """Issue the client a new API key and return it (only its hash is stored). The
    client's other keys keep working until `grace` from now (a key that expires sooner
    keeps its own date), then answer 401; a zero grace ends them at once."""
    if grace < timedelta(0):
        raise ValueError("the grace period cannot be negative")
    ends = timezone.now() + grace
    # The client's row lock serialises two rotations: each new key survives the other's
    # expiry stamp only because it is created after it.
    ApiClient.objects.select_for_update().filter(pk=client.pk).first()
    ClientAPIKey.objects.filter(client=client, revoked=False).filter(
        Q(expiry_date__isnull=True) | Q(expiry_date__gt=ends)
    ).update(expiry_date=ends)
    _, key = ClientAPIKey.objects.create_key(
        name=f"rotated {timezone.now():%Y-%m-%d %H:%M} UTC", client=client
    )
    logger.info("API key of client %s rotated; older keys end at %s", client.name, ends)
    return key


@transaction.atomic
def webhook_secret_rotate(*, client: ApiClient, grace: timedelta = DEFAULT_GRACE) -> str:
    """Give the client a new webhook signing secret and return it. Until `grace` from now
    every delivery carries a signature with the replaced secret as well (after the new
    one), so the client's receiver can switch at its own pace. Only one replaced secret
    is kept: rotating again within the grace period ends the older one's at once."""
    if grace < timedelta(0):
        raise ValueError("the grace period cannot be negative")
    locked = ApiClient.objects.select_for_update().get(pk=client.pk)
    secret = _new_webhook_secret()
    fields = {
        "webhook_secret": secret,
        "webhook_secret_previous": locked.webhook_secret if grace else "",
        "webhook_secret_previous_until": timezone.now() + grace if grace else None,
    }
    ApiClient.objects.filter(pk=client.pk).update(**fields, updated_at=timezone.now())
    for name, value in fields.items():
        setattr(client, name, value)
    logger.info("webhook secret of client %s rotated; the old one signs for %s", client, grace)
    return secret
