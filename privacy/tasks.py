"""The daily retention job (beat, on the maintenance queue)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from privacy.services import pii_redact_expired

logger = logging.getLogger(__name__)
# Records of each kind per run; a run that leaves some sends itself again.
BATCH = 500


@shared_task(name="privacy.redact_expired_pii", ignore_result=True)
def redact_expired_pii() -> None:
    # Half the task's time limit: the record under way when the budget runs out finishes
    # well inside the limit, and the rest is left to the next run.
    run = pii_redact_expired(limit=BATCH, seconds=settings.COT_TASK_TIME_LIMIT / 2)
    logger.info(
        "retention: redacted %d orders, %d prescriptions, H1 register rows of %d orders",
        len(run.orders),
        len(run.prescriptions),
        len(run.registers),
        extra={"rows": run.rows},
    )
    if run.more:
        redact_expired_pii.apply_async(queue="maintenance")
