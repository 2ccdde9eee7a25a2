"""The broker's dead letters (RabbitMQ only): a task message delivered more than the
delivery limit times without an acknowledgement (it kills its worker every time, say)
is moved by RabbitMQ to the `dead_letters` queue (cot_project/broker.py). This sweep
takes each one off that queue and makes it visible: an ERROR log line naming the task,
its arguments and the queue, `cot_dead_letters_total{queue,task}`, and, for an order's
task, the order flagged `needs_attention` with an `order.needs_attention` event (admin),
so it is neither re-driven by the sweeper nor forgotten.
"""

from __future__ import annotations

import logging
import uuid

from celery import current_app, shared_task
from django.conf import settings

from core import metrics
from core.logs import log_context
from cot_project import broker
from orders.models import Order
from orders.services.step_runs import order_flag_needs_attention
from orders.tasks import STEP_OF_TASK

logger = logging.getLogger(__name__)
# Dead letters taken per run: a flood waits for the next run instead of one long task.
DRAIN_BATCH = 500


@shared_task(name="maintenance.drain_dead_letters", ignore_result=True)
def drain_dead_letters() -> int:
    drained = 0
    with current_app.connection_for_write() as conn:
        queue = broker.dead_letter_queue()(conn.default_channel)
        queue.declare()
        while drained < DRAIN_BATCH and (message := queue.get(no_ack=False)) is not None:
            letter = broker.dead_letter_read(
                message.headers,
                message.decode(),
                delivery_limit=settings.COT_BROKER_DELIVERY_LIMIT,
            )
            dead_letter_record(letter)
            # Acknowledged only once recorded: if recording fails, the letter stays queued.
            message.ack()
            drained += 1
    return drained


def dead_letter_record(letter: broker.DeadLetter) -> None:
    order_id = _order_of(letter)
    with log_context(order_id=str(order_id or ""), task=letter.task):
        logger.error(
            "dead letter: %s %s from %s (%s after %s deliveries)",
            letter.task,
            letter.args,
            letter.queue,
            letter.reason,
            letter.deliveries,
            extra={"task_id": letter.task_id, "queue": letter.queue},
        )
    metrics.DEAD_LETTERS_TOTAL.labels(queue=letter.queue, task=letter.task).inc()
    if order_id is not None:
        order_flag_needs_attention(
            order_id=order_id,
            step=STEP_OF_TASK.get(letter.task, letter.task),
            attempts=letter.deliveries,
            dead_lettered_task=letter.task,
        )


def _order_of(letter: broker.DeadLetter) -> uuid.UUID | None:
    """The order an `orders.*` task was about (its first argument), if it exists."""
    if not letter.task.startswith("orders.") or not letter.args:
        return None
    try:
        order_id = uuid.UUID(str(letter.args[0]))
    except ValueError:
        return None
    return order_id if Order.objects.filter(pk=order_id).exists() else None
