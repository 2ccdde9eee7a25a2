from __future__ import annotations

import uuid

from celery import Task, shared_task

from core.http import ExternalError
from notifications.services import notification_mark_failed, notification_send_sms


@shared_task(bind=True, name="notifications.notify_customer", max_retries=8, ignore_result=True)
def notify_customer(self: Task, order_id: str, event_type: str) -> None:
    try:
        notification_send_sms(order_id=uuid.UUID(order_id), event_type=event_type)
    except ExternalError as exc:
        if self.request.retries >= self.max_retries:
            notification_mark_failed(order_id=uuid.UUID(order_id), event_type=event_type)
            return
        raise self.retry(exc=exc, countdown=min(300, 2 ** (self.request.retries + 1))) from exc
