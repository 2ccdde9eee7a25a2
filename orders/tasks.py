"""Thin Celery tasks: an order id in, one service call, a retry policy.

Exceptions mean infrastructure trouble (an outside call, the database): the task retries
with exponential backoff and, when the step has tried long enough, ends the order itself
(`order_step_exhausted`) instead of relying on error callbacks across a chord.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable

from celery import Task, shared_task
from django.conf import settings
from django.db import DatabaseError

from core import metrics
from core.http import ExternalError
from orders.enums import Step
from orders.services import steps, sweeper

RETRYABLE = (ExternalError, steps.StepIncomplete, DatabaseError)


def _backoff(retries: int) -> float:
    # Exponential with full jitter, so a recovering gateway is not hit by a synchronized herd.
    ceiling = min(settings.COT_STEP_RETRY_BACKOFF_MAX, 2**retries)
    return random.uniform(ceiling / 2, ceiling)


def _run(task: Task, step: str, function: Callable[[uuid.UUID], str], order_id: str) -> str:
    started = time.perf_counter()
    try:
        return function(uuid.UUID(order_id))
    except RETRYABLE as exc:
        if steps.order_step_gives_up(uuid.UUID(order_id), step, task.request.retries):
            steps.order_step_exhausted(uuid.UUID(order_id), step)
            return "exhausted"
        raise task.retry(exc=exc, countdown=_backoff(task.request.retries)) from exc
    finally:
        metrics.PIPELINE_STEP_SECONDS.labels(step=step).observe(time.perf_counter() - started)


@shared_task(bind=True, name="orders.prescription_check", max_retries=None)
def prescription_check(self: Task, order_id: str) -> str:
    return _run(self, Step.PRESCRIPTION, steps.order_check_prescription, order_id)


@shared_task(bind=True, name="orders.stock_reserve", max_retries=None)
def stock_reserve(self: Task, order_id: str) -> str:
    return _run(self, Step.STOCK, steps.order_reserve_stock, order_id)


@shared_task(bind=True, name="orders.payment_prepare", max_retries=None)
def payment_prepare(self: Task, order_id: str) -> str:
    return _run(self, Step.PAYMENT_PREPARE, steps.order_prepare_payment, order_id)


@shared_task(bind=True, name="orders.payment_charge", max_retries=None)
def payment_charge(self: Task, order_id: str) -> str:
    return _run(self, Step.CHARGE, steps.order_charge_payment, order_id)


@shared_task(bind=True, name="orders.shipment_book", max_retries=None)
def shipment_book(self: Task, order_id: str) -> str:
    return _run(self, Step.SHIPMENT, steps.order_book_shipment, order_id)


@shared_task(bind=True, name="orders.order_confirm", max_retries=None)
def order_confirm(self: Task, order_id: str) -> str:
    return _run(self, Step.CONFIRM, steps.order_confirm, order_id)


@shared_task(bind=True, name="orders.order_compensate", max_retries=20, ignore_result=True)
def order_compensate(self: Task, order_id: str) -> None:
    try:
        steps.order_compensate(uuid.UUID(order_id))
    except RETRYABLE as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(name="orders.sweep_stuck_orders", ignore_result=True)
def sweep_stuck_orders() -> int:
    return sweeper.order_sweep_stuck()
