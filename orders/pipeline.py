"""The order pipeline's canvas, built in one place (DESIGN.md §4):

    chord(
        group(prescription_check, stock_reserve, payment_prepare),
        payment_charge,
    ) | shipment_book | order_confirm

`COT_PIPELINE_MODE=inline` runs the same step functions one after another in the caller.
"""

from __future__ import annotations

import logging
import uuid

from celery import chord, group
from django.conf import settings

from core.celery_results import results_unwanted
from core.http import ExternalError
from orders import tasks
from orders.enums import Step
from orders.services import steps

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
                tasks.prescription_check.si(oid),
                tasks.stock_reserve.si(oid),
                tasks.payment_prepare.si(oid),
            ),
            tasks.payment_charge.si(oid),
        )
        | tasks.shipment_book.si(oid)
        | tasks.order_confirm.si(oid)
    )


def after_hold(order_id: uuid.UUID):  # -> celery.canvas.Signature
    """What is left once a pharmacist approved: the header ran before the hold."""
    oid = str(order_id)
    return tasks.payment_charge.si(oid) | tasks.shipment_book.si(oid) | tasks.order_confirm.si(oid)


def start(order_id: uuid.UUID) -> None:
    """Run the pipeline for an order (after its commit).

    In Celery mode this sends one small message and a worker builds the chord
    (`launch`): setting up a chord costs several Redis round trips and most of the
    intake request's time, which belongs in a worker, not in the client's wait."""
    if settings.COT_PIPELINE_MODE == "inline":
        run_inline(order_id)
    else:
        tasks.pipeline_start.delay(str(order_id))


def launch(order_id: uuid.UUID) -> None:
    """Build and send the canvas (in a worker). A redelivered start sends it again, which
    the steps' idempotency makes harmless.

    No step stores a result and nothing here waits for one: without `results_unwanted`
    the chord's header results would subscribe this worker to three Redis channels per
    order and keep them (core/celery_results.py)."""
    with results_unwanted():
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
        steps.order_resume_after_review(order_id)
    else:
        tasks.order_resume_after_review.delay(str(order_id))


def run_inline(order_id: uuid.UUID, steps_to_run=INLINE_STEPS) -> None:
    for step, function in steps_to_run:
        try:
            function(order_id)
        except steps.NeedsAttention:
            logger.error("inline pipeline: order %s needs attention", order_id)
            return
        except (ExternalError, steps.StepIncomplete):
            logger.warning("inline pipeline: step %s failed for order %s", step, order_id)
            steps.order_step_exhausted(order_id, step)
            return


def compensate(order_id: uuid.UUID) -> None:
    if settings.COT_PIPELINE_MODE == "inline":
        try:
            steps.order_compensate(order_id)
            return
        except ExternalError:
            logger.warning("inline compensation failed for %s; handing it to a worker", order_id)
    try:
        tasks.order_compensate.delay(str(order_id))
    except Exception:
        # The order has ended (committed); the broker being down must not turn that into
        # an error for the caller. The sweeper finds ended orders with something left to
        # undo and compensates them later.
        logger.exception("could not enqueue compensation for order %s", order_id)
