"""The only way an order's status changes, and the only way events are recorded.

`order_transition` checks the table, moves the status compare-and-set (`UPDATE ... WHERE
status = <expected>`), so of two deliveries of the same step exactly one moves the
order, and appends the event in the same transaction. Subscribers (notifications,
outbound webhooks) receive events after commit through `order_event_committed`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import django.dispatch
from django.db import transaction
from django.utils import timezone

from core import metrics
from orders import sql
from orders.enums import FULFILLED, TERMINAL, EventType, FailureReason, OrderStatus
from orders.models import Order, OrderEvent, OrderStep

logger = logging.getLogger(__name__)
S = OrderStatus
TRANSITIONS: dict[str, frozenset[str]] = {
    S.RECEIVED: frozenset({S.PROCESSING, S.REJECTED, S.PAYMENT_FAILED, S.CANCELLED}),
    S.PROCESSING: frozenset(
        {S.ON_HOLD, S.CONFIRMED, S.READY_FOR_PICKUP, S.REJECTED, S.PAYMENT_FAILED, S.CANCELLED}
    ),
    S.ON_HOLD: frozenset({S.PROCESSING, S.REJECTED, S.PAYMENT_FAILED, S.CANCELLED}),
    S.CONFIRMED: frozenset({S.SHIPPED, S.DELIVERED, S.RETURNED, S.CANCELLED}),
    S.SHIPPED: frozenset({S.DELIVERED, S.RETURNED}),
    S.DELIVERED: frozenset(),
    S.RETURNED: frozenset(),
    S.REJECTED: frozenset(),
    S.PAYMENT_FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    # In-store pickup: handed over against the code, or cancelled (not collected in time,
    # the client, ops).
    S.READY_FOR_PICKUP: frozenset({S.COLLECTED, S.CANCELLED}),
    S.COLLECTED: frozenset(),
}
# Payment retry: a declined charge waits for the client's other payment method, which
# goes on from the charge; the window's end fails the payment, and the client may cancel.
TRANSITIONS[S.PROCESSING] |= {S.AWAITING_PAYMENT}
TRANSITIONS[S.AWAITING_PAYMENT] = frozenset({S.PROCESSING, S.PAYMENT_FAILED, S.CANCELLED})

STATUS_EVENTS: dict[str, str] = {
    S.PROCESSING: EventType.ORDER_PROCESSING,
    S.ON_HOLD: EventType.ORDER_ON_HOLD,
    S.CONFIRMED: EventType.ORDER_CONFIRMED,
    S.SHIPPED: EventType.ORDER_SHIPPED,
    S.DELIVERED: EventType.ORDER_DELIVERED,
    S.RETURNED: EventType.ORDER_RETURNED,
    S.REJECTED: EventType.ORDER_REJECTED,
    S.PAYMENT_FAILED: EventType.PAYMENT_FAILED,
    S.CANCELLED: EventType.ORDER_CANCELLED,
    S.AWAITING_PAYMENT: EventType.PAYMENT_RETRY_REQUESTED,
    S.READY_FOR_PICKUP: EventType.ORDER_READY_FOR_PICKUP,
    S.COLLECTED: EventType.ORDER_COLLECTED,
}

# Sent after commit with `order_id`, `event_id` and `event_type`; `orders` does not know
# who listens.
order_event_committed = django.dispatch.Signal()


class InvalidTransition(Exception):
    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"cannot move an order from {current} to {target}")
        self.current, self.target = current, target


def order_event_record(
    *, order_id: uuid.UUID, type: str, data: dict[str, Any] | None = None
) -> OrderEvent:
    """Append one event to the order's timeline (inside the transaction of the change it
    describes); it is announced to subscribers after commit."""
    [event] = order_events_record(order_id=order_id, events=[(type, data)])
    return event


def order_events_record(
    *, order_id: uuid.UUID, events: Iterable[tuple[str, dict[str, Any] | None]]
) -> list[OrderEvent]:
    """Record several events of one order in one INSERT (call it inside the transaction
    of the change they describe); each is announced after commit, in order."""
    rows = _rows(events)
    at = timezone.now()
    ids = sql.events_insert(order_id=order_id, events=rows, at=at)
    return _announced(order_id, ids, rows, at)


def _rows(events: Iterable[tuple[str, dict[str, Any] | None]]) -> list[tuple[str, dict[str, Any]]]:
    return [(str(type), data or {}) for type, data in events]


def _announced(
    order_id: uuid.UUID, ids: list[int], rows: list[tuple[str, dict[str, Any]]], at: Any
) -> list[OrderEvent]:
    recorded = []
    for event_id, (event_type, data) in zip(ids, rows, strict=True):
        recorded.append(
            OrderEvent(id=event_id, order_id=order_id, type=event_type, data=data, at=at)
        )
        order_event_announce(order_id, event_id, event_type)
    return recorded


def order_event_announce(order_id: uuid.UUID, event_id: int, event_type: str) -> None:
    """Tell `order_event_committed`'s receivers about an event once its transaction
    commits. Each receiver is called even when another fails (`send_robust`): a
    notification that cannot be queued must not keep the pipeline from starting."""
    transaction.on_commit(lambda: _announce(order_id, event_id, event_type))


def _announce(order_id: uuid.UUID, event_id: int, event_type: str) -> None:
    answers = order_event_committed.send_robust(
        sender=Order, order_id=order_id, event_id=event_id, event_type=event_type
    )
    for receiver, answer in answers:
        if isinstance(answer, Exception):
            logger.error(
                "event %s (%s) of order %s: receiver %s failed: %r",
                event_id,
                event_type,
                order_id,
                getattr(receiver, "__qualname__", receiver),
                answer,
                extra={"order_id": str(order_id)},
            )


def order_step_record(
    *,
    step: OrderStep,
    ok: bool,
    result: str,
    data: dict[str, Any],
    events: Sequence[tuple[str, dict[str, Any] | None]] = (),
) -> bool:
    """Record a pipeline step's outcome once (compare-and-set on `ok IS NULL`) and, only
    when this call recorded it, the events it warrants, in the same transaction.
    Returns False when another run had recorded an outcome first."""
    rows = _rows(events)
    at = timezone.now()
    ids = sql.step_outcome_record(
        step_id=step.pk, order_id=step.order_id, ok=ok, result=result, data=data, events=rows, at=at
    )
    if ids is None:
        return False
    _announced(step.order_id, ids, rows, at)
    return True


def order_transition(
    *,
    order: Order,
    to: str,
    expected: str | frozenset[str] | None = None,
    failure_reason: str | None = None,
    data: dict[str, Any] | None = None,
    events: Iterable[tuple[str, dict[str, Any] | None]] = (),
) -> bool:
    """Move `order` to `to` if it is still in `expected` (default: its loaded status).
    `events` (what led to the move) are recorded with the status event, before it.

    Returns False, changing nothing, when another actor moved the order first.
    Raises InvalidTransition when the table forbids the move."""
    allowed_from = (frozenset({expected}) if isinstance(expected, str) else expected) or frozenset(
        {order.status}
    )
    for current in allowed_from:
        if to not in TRANSITIONS[current]:
            raise InvalidTransition(current, to)
    now = timezone.now()
    fields: dict[str, Any] = {"status": to, "updated_at": now}
    if failure_reason is not None:
        fields["failure_reason"] = failure_reason
    if to in FULFILLED:
        fields["confirmed_at"] = now
    event_data = dict(data or {})
    if failure_reason is not None:
        event_data.setdefault("reason", failure_reason)
    rows = _rows(events)
    rows.append((STATUS_EVENTS[to], event_data))
    ids = sql.order_move(
        order_id=order.pk, fields=fields, allowed_from=sorted(allowed_from), events=rows, at=now
    )
    if ids is None:
        return False
    _announced(order.pk, ids, rows, now)
    transaction.on_commit(lambda: _count(order, to, now, failure_reason))
    for name, value in fields.items():
        setattr(order, name, value)
    return True


def _count(order: Order, status: str, at: Any, failure_reason: str | None) -> None:
    if status in FULFILLED:
        metrics.ORDER_DURATION_SECONDS.observe((at - order.created_at).total_seconds())
    elif status == S.PAYMENT_FAILED:
        metrics.error_count(metrics.PAYMENT_ERROR)
    elif status == S.CANCELLED and failure_reason == FailureReason.FULFILMENT_UNAVAILABLE:
        metrics.error_count(metrics.FULFILMENT_ERROR)
    # Last, so that a scrape that sees the order counted sees the rest of it too.
    if status in FULFILLED or status in TERMINAL:
        metrics.ORDERS_TOTAL.labels(channel=order.channel, status=status).inc()
