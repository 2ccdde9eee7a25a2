"""The scaffold every pipeline step stands on: a run is counted before it acts, an
outcome is recorded once, and an order that keeps killing its worker is flagged for a
person instead of looping.

A step's row (`OrderStep`, unique per order and step) is both its attempt counter and
its recorded outcome. Redelivered tasks, the sweeper and two workers on one order all
meet at that row: the first outcome recorded wins, later runs read it.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import faults
from orders import sql
from orders.enums import EventType, OrderStatus
from orders.models import Order, OrderLine, OrderStep
from orders.services.transitions import order_event_record, order_step_record, order_transition

S = OrderStatus
# What a charge or booking step returns when its order ended while it was acting: what
# it did must be undone, and the task layer starts the compensation.
ENDED_MEANWHILE = "ended_meanwhile"


class StepIncomplete(Exception):
    """A step ran before the steps it depends on recorded their outcome: retry later."""


class NeedsAttention(Exception):
    """The order is flagged `needs_attention`: no step runs until a person clears it."""


def step_guard(order: Order) -> None:
    if order.needs_attention:
        raise NeedsAttention(f"order {order.pk} needs attention")


def order_with_lines(order_id: uuid.UUID) -> tuple[Order, list[OrderLine]]:
    """The order and its lines in one query (the lines with their order joined)."""
    lines = list(OrderLine.objects.select_related("order").filter(order_id=order_id))
    if not lines:
        return Order.objects.get(pk=order_id), []
    return lines[0].order, lines


def order_with_steps(order_id: uuid.UUID) -> tuple[Order, dict[str, OrderStep]]:
    """The order and its recorded steps, by step, in one query."""
    rows = list(OrderStep.objects.select_related("order").filter(order_id=order_id))
    if not rows:
        return Order.objects.get(pk=order_id), {}
    return rows[0].order, {row.step: row for row in rows}


def step_begin_first(
    order_id: uuid.UUID, step: str, *, lines: bool = False
) -> tuple[Order, list[OrderLine], OrderStep]:
    """For the header steps: load the order (with its lines if asked), move it from
    received to processing if this is the first step to run, and count this run of
    `step`, the move and the count in one transaction."""
    if lines:
        order, order_lines = order_with_lines(order_id)
    else:
        order, order_lines = Order.objects.get(pk=order_id), []
    step_guard(order)
    if order.status != S.RECEIVED:
        return order, order_lines, step_begin(order, step)
    with transaction.atomic():
        moved = order_transition(order=order, to=S.PROCESSING, expected=S.RECEIVED)
        row = _step_count(order.pk, step)
    if not moved:
        # Another step moved it first (or someone ended it): see where it is now.
        order.refresh_from_db(fields=["status", "updated_at"])
    return order, order_lines, _step_check(order, step, row)


def _step_count(order_id: uuid.UUID, step: str) -> OrderStep:
    """A first run creates the row with one attempt; a re-run of an unfinished step adds
    one; a finished step's row comes back unchanged (one statement, orders/sql.py)."""
    return sql.step_count(order_id=order_id, step=step, at=timezone.now())


def step_begin(order: Order, step: str) -> OrderStep:
    """Count a run of an unfinished step (committed before the step does anything, so a
    run that kills its worker is counted too); past COT_STEP_MAX_ATTEMPTS the order is
    flagged and NeedsAttention raised instead of running the step again."""
    return _step_check(order, step, _step_count(order.pk, step))


def _step_check(order: Order, step: str, row: OrderStep) -> OrderStep:
    if row.ok is None:
        if row.attempts > settings.COT_STEP_MAX_ATTEMPTS:
            order_flag_needs_attention(order_id=order.pk, step=step, attempts=row.attempts - 1)
            raise NeedsAttention(f"order {order.pk}: step {step} ran {row.attempts - 1} times")
        faults.fault_crash_point(f"{faults.CRASH_IN_STEP}{step}")
    return row


def step_finish(
    row: OrderStep,
    *,
    ok: bool,
    result: str,
    data: dict[str, Any] | None = None,
    events: list[tuple[str, dict[str, Any]]] = (),
) -> OrderStep:
    """Record the outcome once, with its events; a concurrent run that finished first wins
    (and its outcome is what comes back)."""
    if order_step_record(step=row, ok=ok, result=result, data=data or {}, events=events):
        row.ok, row.result, row.data = ok, result, data or {}
    else:
        row.refresh_from_db()
    return row


def order_status_now(order: Order) -> str:
    """The order's status as committed now, set on it: a step that charged or booked looks
    for a cancellation that came meanwhile."""
    order.status = Order.objects.values_list("status", flat=True).get(pk=order.pk)
    return order.status


def order_flag_needs_attention(
    *, order_id: uuid.UUID, step: str, attempts: int, dead_lettered_task: str = ""
) -> bool:
    """Flag the order for a person (compare-and-set, one event however many deliveries).
    `dead_lettered_task`: the broker gave up on this task's message (its delivery limit)
    and `attempts` counts its deliveries."""
    data: dict[str, Any] = {"step": step, "attempts": attempts}
    if dead_lettered_task:
        data.update(task=dead_lettered_task, dead_lettered=True)
    with transaction.atomic():
        flagged = Order.objects.filter(pk=order_id, needs_attention=False).update(
            needs_attention=True, updated_at=timezone.now()
        )
        if flagged:
            order_event_record(order_id=order_id, type=EventType.ORDER_NEEDS_ATTENTION, data=data)
    return bool(flagged)


def order_clear_needs_attention(*, order_id: uuid.UUID) -> bool:
    """A person looked (and fixed the cause): unflag the order and give its unfinished
    steps a fresh count. The caller re-drives it."""
    with transaction.atomic():
        cleared = Order.objects.filter(pk=order_id, needs_attention=True).update(
            needs_attention=False, updated_at=timezone.now()
        )
        if cleared:
            OrderStep.objects.filter(order_id=order_id, ok__isnull=True).update(attempts=0)
    return bool(cleared)
