"""The order pipeline's canvas, built in one place:

    chord(
        group(check_prescription, reserve_stock, prepare_payment),
        charge_payment,
    ) | book_shipment | confirm_order

`COT_PIPELINE_MODE=inline` runs the same step functions one after another in the caller.
"""

from __future__ import annotations

import logging
import uuid

from celery import chord, group
from django.conf import settings

from core.http import ExternalError
from orders import tasks
from orders.enums import Step
from orders.services import steps
from orders.services.ending import order_compensate
from orders.services.retry_policy import order_step_exhausted
from orders.services.step_runs import ENDED_MEANWHILE, NeedsAttention, StepIncomplete
from orders.services.sweeper import SweepFound

logger = logging.getLogger(__name__)

INLINE_STEPS = (
    (Step.PRESCRIPTION, steps.order_check_prescription),
    (Step.STOCK, steps.order_reserve_stock),
    (Step.PAYMENT_PREPARE, steps.order_prepare_payment),
    (Step.CHARGE, steps.order_charge_payment),
    (Step.SHIPMENT, steps.order_book_shipment),
    (Step.CONFIRM, steps.order_confirm),
)


def canvas(order_id: uuid.UUID):  # -> celery.canvas.Signature
    oid = str(order_id)
    return (
        chord(
            group(
                tasks.check_prescription.si(oid),
                tasks.reserve_stock.si(oid),
                tasks.prepare_payment.si(oid),
            ),
            tasks.charge_payment.si(oid),
        )
        | tasks.book_shipment.si(oid)
        | tasks.confirm_order.si(oid)
    )


def after_hold(order_id: uuid.UUID):  # -> celery.canvas.Signature
    """What is left once a pharmacist approved: the header ran before the hold."""
    oid = str(order_id)
    return tasks.charge_payment.si(oid) | tasks.book_shipment.si(oid) | tasks.confirm_order.si(oid)


def start(order_id: uuid.UUID) -> None:
    """Run the pipeline for an order (after its commit).

    In Celery mode this sends one small message and a worker builds the chord
    (`launch`): setting up a chord costs several Redis round trips and most of the
    intake request's time, which belongs in a worker, not in the client's wait."""
    if settings.COT_PIPELINE_MODE == "inline":
        run_inline(order_id)
    else:
        tasks.start_pipeline.delay(str(order_id))


def launch(order_id: uuid.UUID) -> None:
    """Build and send the canvas (in a worker). A redelivered start sends it again, which
    the steps' idempotency makes harmless.

    No step stores a result and nothing here waits for one: sent from a task, the chord
    leaves no result subscription behind (the project's result backend tracks no results
    inside tasks)."""
    canvas(order_id).apply_async()


def resume(order_id: uuid.UUID) -> None:
    """Continue an order that left `on_hold` for `processing`."""
    if settings.COT_PIPELINE_MODE == "inline":
        run_inline(order_id, steps_to_run=INLINE_STEPS[3:])
    else:
        after_hold(order_id).apply_async()


def review_decided(order_id: uuid.UUID) -> None:
    """Hand an on-hold order whose prescription was just reviewed to the pipeline."""
    if settings.COT_PIPELINE_MODE == "inline":
        follow_outcome(order_id, steps.order_resume_after_review(order_id))
    else:
        tasks.resume_after_review.delay(str(order_id))


def run_inline(order_id: uuid.UUID, steps_to_run=INLINE_STEPS) -> None:
    for step, function in steps_to_run:
        try:
            outcome = function(order_id)
        except NeedsAttention:
            logger.error("inline pipeline: order %s needs attention", order_id)
            return
        except (ExternalError, StepIncomplete):
            logger.warning("inline pipeline: step %s failed for order %s", step, order_id)
            order_step_exhausted(order_id, step)
            return
        if outcome == ENDED_MEANWHILE:
            compensate(order_id)
            return


def follow_outcome(order_id: uuid.UUID, outcome: str) -> None:
    """What a step's outcome calls for next, beyond the canvas: a charge or a booking
    that landed on an order ended meanwhile is undone; an order a pharmacist released
    goes on from the charge."""
    if outcome == ENDED_MEANWHILE:
        compensate(order_id)
    elif outcome == steps.RESUMED:
        resume(order_id)


def redrive(found: SweepFound) -> None:
    """Act on what the sweeper found: start stuck orders again, hand on holds whose
    prescription was decided, compensate ended orders that still owe something."""
    for order_id in found.stuck:
        start(order_id)
    for order_id in found.decided_holds:
        review_decided(order_id)
    for order_id in found.owing:
        logger.warning("sweeper compensates ended order %s again", order_id)
        compensate(order_id)


def compensate(order_id: uuid.UUID) -> None:
    if settings.COT_PIPELINE_MODE == "inline":
        try:
            order_compensate(order_id)
            return
        except ExternalError:
            logger.warning("inline compensation failed for %s; handing it to a worker", order_id)
    try:
        tasks.compensate_order.delay(str(order_id))
    except Exception:
        # The order has ended (committed); the broker being down must not turn that into
        # an error for the caller. The sweeper finds ended orders with something left to
        # undo and compensates them later.
        logger.exception("could not enqueue compensation for order %s", order_id)
