"""Refunds are sent by a task once the transaction that wrote them commits, and again by
the sweeper when a sender died: the gateway acts on each key once, so resending is safe."""

from __future__ import annotations

import logging
import random

from celery import Task, shared_task
from django.conf import settings
from django.db import DatabaseError

from core.http import ExternalError
from payments.services.refunds import refund_send, refunds_unsent

logger = logging.getLogger(__name__)
# Older than this and unsent, a refund's first sender is presumed gone.
SWEEP_AFTER_SECONDS = 60


@shared_task(bind=True, name="payments.send_refund", max_retries=None, ignore_result=True)
def send_refund(self: Task, attempt_id: int, token: str = "") -> bool:
    try:
        return refund_send(attempt_id=attempt_id, token=token)
    except (ExternalError, DatabaseError) as exc:
        ceiling = min(settings.COT_STEP_RETRY_BACKOFF_MAX, 2**self.request.retries)
        logger.warning("refund %s: will retry (%s)", attempt_id, exc)
        raise self.retry(exc=exc, countdown=random.uniform(ceiling / 2, ceiling)) from exc


@shared_task(name="payments.sweep_refunds", ignore_result=True)
def sweep_refunds() -> int:
    unsent = refunds_unsent(older_than_seconds=SWEEP_AFTER_SECONDS)
    for attempt_id in unsent:
        send_refund.delay(attempt_id)
    return len(unsent)
