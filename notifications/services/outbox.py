"""The timeline as an outbox: the cursor both sweepers (webhooks, customer messages) read
the order events past."""

from __future__ import annotations

import datetime
from datetime import timedelta

from django.conf import settings
from django.db.models import Max, Model

from orders.models import OrderEvent


def outbox_cursor_advance(
    cursor_model: type[Model], *, cursor: int, now: datetime.datetime, batch_end: int | None
) -> None:
    """Move a sweeper's cursor (the single row of `cursor_model`, at event id `cursor`)
    over the events older than `COT_WEBHOOK_OUTBOX_LAG_SECONDS`: ids are handed out at
    insert and become visible at commit, so a younger event may still be joined by an
    older id, and the lag is longer than any transaction lasts. `batch_end` is the last
    event id of a sweep that hit its batch size: the rest is checked next time."""
    horizon = now - timedelta(seconds=settings.COT_WEBHOOK_OUTBOX_LAG_SECONDS)
    settled = OrderEvent.objects.filter(pk__gt=cursor, at__lt=horizon).aggregate(last=Max("pk"))[
        "last"
    ]
    if settled is not None and batch_end is not None:
        settled = min(settled, batch_end)
    if settled is not None and settled > cursor:
        # Compare-and-set: two sweeps at once move it once.
        cursor_model.objects.filter(pk=1, event_id=cursor).update(event_id=settled)
