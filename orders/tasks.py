"""Thin Celery tasks: an order id in, one service call, a retry policy.

Exceptions mean infrastructure trouble (an outside call, the database): the task retries
with exponential backoff and, when the step has tried long enough, ends the order itself
(`order_step_exhausted`) instead of relying on error callbacks across a chord.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from types import ModuleType

from celery import Task, shared_task
from django.conf import settings
from django.db import DatabaseError

from core import metrics
from core.attempts import AttemptInProgress
from core.http import ExternalError
from core.logs import log_context
from orders.enums import Step
from orders.services import expiry, holds, payment_retry, pickup, steps, substitution, sweeper
from orders.services.ending import order_compensate
from orders.services.retry_policy import order_step_exhausted, order_step_gives_up
from orders.services.step_runs import NeedsAttention, StepIncomplete

logger = logging.getLogger(__name__)
RETRYABLE = (ExternalError, StepIncomplete, DatabaseError)
# Trouble that says nothing about the gateway or courier a step talks to: the database
# itself failing (restarting, failing over), or another process holding the call's lease
# (a sender that died or lost the database holds it until it ends). A step that runs out
# of retries on these does not end the order: it stays in `processing` and the sweeper
# re-drives it (the attempt cap still bounds a cause that never goes away).
NOT_THE_PEERS_FAULT = (DatabaseError, AttemptInProgress)


def _backoff(retries: int) -> float:
    # Exponential with full jitter, so a recovering gateway is not hit by a synchronized herd.
    ceiling = min(settings.COT_STEP_RETRY_BACKOFF_MAX, 2**retries)
    return random.uniform(ceiling / 2, ceiling)


def _pipeline() -> ModuleType:
    # The one function-local import in orders: the pipeline module builds its canvas from
    # these tasks, and a task's outcome may call for the pipeline again.
    from orders import pipeline

    return pipeline


def _run(task: Task, step: str, function: Callable[[uuid.UUID], str], order_id: str) -> str:
    # order_id, task and request_id are bound for every task by core.logs' signals.
    with log_context(step=step):
        started = time.perf_counter()
        try:
            result = function(uuid.UUID(order_id))
            logger.info("step %s: %s", step, result, extra={"result": result})
        except NeedsAttention as exc:
            # Acknowledged and not retried: the order waits for a person (admin).
            logger.error("step %s: %s", step, exc, extra={"result": "needs_attention"})
            return "needs_attention"
        except RETRYABLE as exc:
            if isinstance(exc, StepIncomplete) and task.request.retries >= (
                settings.COT_STEP_MAX_RETRIES
            ):
                # An earlier step never recorded its outcome (it gave up on the database,
                # say): that says nothing about this step, so the order is left in
                # `processing` for the sweeper to re-drive rather than ended for this step.
                logger.error("step %s: waited out its retries for an earlier step", step)
                return "incomplete"
            if isinstance(exc, NOT_THE_PEERS_FAULT) and task.request.retries >= (
                settings.COT_STEP_MAX_RETRIES
            ):
                logger.error("step %s: retries exhausted, left for the sweeper (%s)", step, exc)
                return "incomplete"
            if order_step_gives_up(uuid.UUID(order_id), step, task.request.retries):
                logger.error("step %s: retries exhausted (%s)", step, exc)
                order_step_exhausted(uuid.UUID(order_id), step)
                return "exhausted"
            logger.warning("step %s: will retry (%s)", step, exc)
            raise task.retry(exc=exc, countdown=_backoff(task.request.retries)) from exc
        finally:
            metrics.PIPELINE_STEP_SECONDS.labels(step=step).observe(time.perf_counter() - started)
    _pipeline().follow_outcome(uuid.UUID(order_id), result)
    return result


# Nothing reads a step's return value (the chord counts its parts whether results are
# stored or not, and the outcome is in OrderStep): storing it would be a Redis write per task.
# Task names are verbs of the pipeline; the services they call are `order_<verb>`.
@shared_task(name="orders.start_pipeline", ignore_result=True)
def start_pipeline(order_id: str) -> None:
    _pipeline().launch(uuid.UUID(order_id))


@shared_task(bind=True, name="orders.check_prescription", max_retries=None, ignore_result=True)
def check_prescription(self: Task, order_id: str) -> str:
    return _run(self, Step.PRESCRIPTION, steps.order_check_prescription, order_id)


@shared_task(bind=True, name="orders.reserve_stock", max_retries=None, ignore_result=True)
def reserve_stock(self: Task, order_id: str) -> str:
    return _run(self, Step.STOCK, steps.order_reserve_stock, order_id)


@shared_task(bind=True, name="orders.prepare_payment", max_retries=None, ignore_result=True)
def prepare_payment(self: Task, order_id: str) -> str:
    return _run(self, Step.PAYMENT_PREPARE, steps.order_prepare_payment, order_id)


@shared_task(bind=True, name="orders.charge_payment", max_retries=None, ignore_result=True)
def charge_payment(self: Task, order_id: str) -> str:
    return _run(self, Step.CHARGE, steps.order_charge_payment, order_id)


@shared_task(bind=True, name="orders.book_shipment", max_retries=None, ignore_result=True)
def book_shipment(self: Task, order_id: str) -> str:
    return _run(self, Step.SHIPMENT, steps.order_book_shipment, order_id)


@shared_task(bind=True, name="orders.confirm_order", max_retries=None, ignore_result=True)
def confirm_order(self: Task, order_id: str) -> str:
    return _run(self, Step.CONFIRM, steps.order_confirm, order_id)


# No retry cap: giving up would leave money or a booking behind for an ended order.
@shared_task(bind=True, name="orders.compensate_order", max_retries=None, ignore_result=True)
def compensate_order(self: Task, order_id: str) -> None:
    try:
        order_compensate(uuid.UUID(order_id))
    except RETRYABLE as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(bind=True, name="orders.resume_after_review", max_retries=None, ignore_result=True)
def resume_after_review(self: Task, order_id: str) -> str:
    return _run(self, Step.PRESCRIPTION, steps.order_resume_after_review, order_id)


@shared_task(name="orders.sweep_stuck_orders", ignore_result=True)
def sweep_stuck_orders() -> int:
    found = sweeper.order_sweep_stuck()
    _pipeline().redrive(found)
    return found.count


@shared_task(name="orders.expire_reservations", ignore_result=True)
def expire_reservations() -> int:
    return expiry.order_expire_reservations()


@shared_task(name="orders.expire_holds", ignore_result=True)
def expire_holds() -> int:
    return holds.order_expire_holds()


@shared_task(name="orders.expire_pickups", ignore_result=True)
def expire_pickups() -> int:
    return pickup.order_expire_pickups()


@shared_task(name="orders.expire_substitutions", ignore_result=True)
def expire_substitutions() -> int:
    expired = substitution.substitution_expire()
    for settled in expired:
        if settled.resumed:
            _pipeline().resume(settled.substitution.order_id)
    return len(expired)


@shared_task(name="orders.expire_payment_retries", ignore_result=True)
def expire_payment_retries() -> int:
    return payment_retry.order_expire_payment_retries()


# The pipeline step each order task runs, by task name (what a dead-lettered message's
# flag names: cot_project/tasks.py). Names, not `task.name`: reading a shared task's
# attribute at import would bind it to Celery's fallback app before ours exists.
STEP_OF_TASK = {
    "orders.check_prescription": Step.PRESCRIPTION,
    "orders.reserve_stock": Step.STOCK,
    "orders.prepare_payment": Step.PAYMENT_PREPARE,
    "orders.charge_payment": Step.CHARGE,
    "orders.book_shipment": Step.SHIPMENT,
    "orders.confirm_order": Step.CONFIRM,
    "orders.resume_after_review": Step.PRESCRIPTION,
}
