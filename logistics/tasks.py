"""A parcel's partner told what it holds after lines were cancelled: retried until the
partner answers (the amendment's key makes every retry the same request)."""

from __future__ import annotations

import logging
import random

from celery import Task, shared_task
from django.conf import settings
from django.db import DatabaseError

from core.http import ExternalError
from logistics.services.amend import shipment_amendment_send, shipment_amendments_owed

logger = logging.getLogger(__name__)
# Owed this long, an amendment's task is presumed lost.
SWEEP_AFTER_SECONDS = 60


# No retry cap: giving up would leave cancelled (and refunded) units booked for delivery.
@shared_task(bind=True, name="logistics.amend_shipment", max_retries=None, ignore_result=True)
def amend_shipment(self: Task, shipment_id: int, key: str) -> str:
    try:
        return shipment_amendment_send(shipment_id=shipment_id, key=key)
    except (ExternalError, DatabaseError) as exc:
        ceiling = min(settings.COT_STEP_RETRY_BACKOFF_MAX, 2**self.request.retries)
        logger.warning("amendment %s: will retry (%s)", key, exc)
        raise self.retry(exc=exc, countdown=random.uniform(ceiling / 2, ceiling)) from exc


@shared_task(name="logistics.sweep_amendments", ignore_result=True)
def sweep_amendments() -> int:
    owed = shipment_amendments_owed(older_than_seconds=SWEEP_AFTER_SECONDS)
    for shipment_id, key in owed:
        amend_shipment.delay(shipment_id, key)
    return len(owed)
