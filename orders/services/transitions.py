"""The only way an order's status changes, and the only way events are recorded.

`order_transition` checks the table, moves the status compare-and-set (`UPDATE ... WHERE
status = <expected>`), so of two deliveries of the same step exactly one moves the
order, and appends the event in the same transaction. Subscribers (notifications,
outbound webhooks) receive events after commit through `order_event_committed`.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import django.dispatch
from django.db import transaction
from django.db.models import Field
from django.utils import timezone

from core import metrics
from orders.enums import TERMINAL_STATUSES, EventType, FailureReason, OrderStatus
from orders.models import Order, OrderEvent, OrderStep

S = OrderStatus
TRANSITIONS: dict[str, frozenset[str]] = {
    S.RECEIVED: frozenset({S.PROCESSING, S.REJECTED, S.PAYMENT_FAILED, S.CANCELLED}),
    S.PROCESSING: frozenset({S.ON_HOLD, S.CONFIRMED, S.REJECTED, S.PAYMENT_FAILED, S.CANCELLED}),
    S.ON_HOLD: frozenset({S.PROCESSING, S.REJECTED, S.PAYMENT_FAILED, S.CANCELLED}),
    S.CONFIRMED: frozenset({S.SHIPPED, S.DELIVERED, S.CANCELLED}),
    S.SHIPPED: frozenset({S.DELIVERED}),
    S.DELIVERED: frozenset(),
    S.REJECTED: frozenset(),
    S.PAYMENT_FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}

STATUS_EVENTS: dict[str, str] = {
    S.PROCESSING: EventType.ORDER_PROCESSING,
    S.ON_HOLD: EventType.ORDER_ON_HOLD,
    S.CONFIRMED: EventType.ORDER_CONFIRMED,
    S.SHIPPED: EventType.ORDER_SHIPPED,
    S.DELIVERED: EventType.ORDER_DELIVERED,
    S.REJECTED: EventType.ORDER_REJECTED,
    S.PAYMENT_FAILED: EventType.PAYMENT_FAILED,
    S.CANCELLED: EventType.ORDER_CANCELLED,
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
    [event] = order_events_record(order_id=order_id, events=[(type, data)])
    return event


# An event is one row and its id; `OrderEvent.objects.create()` and `bulk_create()` build
# and compile an INSERT for every call, which cost more CPU than the statement itself.
_EVENTS_SQL = (
    "INSERT INTO orders_orderevent (order_id, type, data, at) VALUES {values} RETURNING id"
)


@functools.cache
def _fields() -> tuple[Field, Field, Field, Field, Field]:
    """Looked up once per process (the models are ready by the first call), not per
    statement."""
    return (
        OrderEvent._meta.get_field("order"),
        OrderEvent._meta.get_field("data"),
        OrderEvent._meta.get_field("at"),
        Order._meta.get_field("updated_at"),
        OrderStep._meta.get_field("data"),
    )


def order_events_record(
    *, order_id: uuid.UUID, events: Iterable[tuple[str, dict[str, Any] | None]]
) -> list[OrderEvent]:
    """Record several events of one order in one INSERT (call it inside the transaction
    of the change they describe); each is still announced after commit, in order."""
    rows = [(str(type), data or {}) for type, data in events]
    if not rows:
        return []
    connection = transaction.get_connection()
    order_field, json, at_field, _, _ = _fields()
    at = timezone.now()
    prepared_order_id = order_field.get_db_prep_value(order_id, connection)
    prepared_at = at_field.get_db_prep_value(at, connection)
    params: list[Any] = []
    for event_type, event_data in rows:
        params += [
            prepared_order_id,
            event_type,
            json.get_db_prep_value(event_data, connection),
            prepared_at,
        ]
    # Several rows come back in the order of VALUES on both databases (bulk_create
    # relies on that too): ids follow the timeline.
    sql = _EVENTS_SQL.format(values=", ".join(["(%s, %s, %s, %s)"] * len(rows)))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()]
    recorded = []
    for event_id, (event_type, event_data) in zip(ids, rows, strict=True):
        event = OrderEvent(id=event_id, order_id=order_id, type=event_type, data=event_data, at=at)
        event._state.adding = False
        event._state.db = connection.alias
        recorded.append(event)
        order_event_announce(order_id, event_id, event_type)
    return recorded


def order_event_announce(order_id: uuid.UUID, event_id: int, event_type: str) -> None:
    """Tell `order_event_committed`'s receivers about an event once its transaction
    commits: for code that writes an event row with its own statement."""
    transaction.on_commit(
        lambda: order_event_committed.send(
            sender=Order, order_id=order_id, event_id=event_id, event_type=event_type
        )
    )


# PostgreSQL: the step's outcome (compare-and-set) and its events in one statement, atomic
# on its own; an event row exists only if the UPDATE changed the step. `{values}` is one
# `(n, %s, %s::jsonb)` row per event; ORDER BY n keeps their ids in the given order. Each
# row also carries the order's status as of the statement's start (its snapshot), which is
# after every write the step made before it: a step that just charged or booked checks it
# for a cancellation that came meanwhile, saving a round trip. A cancellation committed
# while this statement runs is not seen here; that is safe because compensation reads the
# payment and shipment rows, committed by earlier statements, not this step's outcome.
_STEP_OUTCOME_SQL = """
WITH finished AS (
    UPDATE orders_orderstep SET ok = %s, result = %s, data = %s
    WHERE id = %s AND ok IS NULL
    RETURNING order_id
)
INSERT INTO orders_orderevent (order_id, type, data, at)
SELECT finished.order_id, e.type, e.data, %s
FROM finished CROSS JOIN (VALUES {values}) AS e (n, type, data)
ORDER BY e.n
RETURNING id, type, (SELECT status FROM orders_order WHERE id = orders_orderevent.order_id)
"""
_STEP_OUTCOME_ONLY_SQL = (
    "UPDATE orders_orderstep SET ok = %s, result = %s, data = %s WHERE id = %s AND ok IS NULL"
)
_STATUS_RETURNING = (
    " RETURNING (SELECT status FROM orders_order WHERE id = orders_orderstep.order_id)"
)


def _event_values(count: int) -> str:
    return ", ".join(f"({n}, %s, %s::jsonb)" for n in range(count))


def order_step_record(
    *,
    step: OrderStep,
    ok: bool,
    result: str,
    data: dict[str, Any],
    events: Sequence[tuple[str, dict[str, Any] | None]] = (),
) -> str | None:
    """Record a pipeline step's outcome once (compare-and-set on `ok IS NULL`) and, only
    when this call recorded it, the events it warrants, in the same transaction.

    Returns the order's status when this call recorded it (on PostgreSQL as of the
    statement's start, after the step's earlier writes; see `_STEP_OUTCOME_SQL`); None
    when another run had recorded one first."""
    connection = transaction.get_connection()
    _, json, at_field, _, step_data = _fields()
    params: list[Any] = [ok, result, step_data.get_db_prep_value(data, connection), step.pk]
    if connection.vendor != "postgresql":
        with transaction.atomic() if events else contextlib.nullcontext():
            with connection.cursor() as cursor:
                cursor.execute(_STEP_OUTCOME_ONLY_SQL, params)
                recorded = cursor.rowcount
            if recorded and events:
                order_events_record(order_id=step.order_id, events=events)
        if not recorded:
            return None
        return Order.objects.values_list("status", flat=True).get(pk=step.order_id)
    if not events:
        # One statement: it needs no transaction of its own.
        with connection.cursor() as cursor:
            cursor.execute(_STEP_OUTCOME_ONLY_SQL + _STATUS_RETURNING, params)
            row = cursor.fetchone()
        return row[0] if row else None
    params.append(at_field.get_db_prep_value(timezone.now(), connection))
    for event_type, event_data in events:
        params += [str(event_type), json.get_db_prep_value(event_data or {}, connection)]
    with connection.cursor() as cursor:
        cursor.execute(_STEP_OUTCOME_SQL.format(values=_event_values(len(events))), params)
        rows = cursor.fetchall()
    for event_id, event_type, _ in rows:
        order_event_announce(step.order_id, event_id, event_type)
    return rows[0][2] if rows else None


# PostgreSQL: the compare-and-set move and its events in one statement (as for a step's
# outcome above): the events exist only if the UPDATE moved the order. `{sets}` are the
# changed columns, `{statuses}` one placeholder per allowed current status.
_TRANSITION_SQL = """
WITH moved AS (
    UPDATE orders_order SET {sets}
    WHERE id = %s AND status IN ({statuses})
    RETURNING id
)
INSERT INTO orders_orderevent (order_id, type, data, at)
SELECT moved.id, e.type, e.data, %s
FROM moved CROSS JOIN (VALUES {values}) AS e (n, type, data)
ORDER BY e.n
RETURNING id, type
"""
_TRANSITION_ONLY_SQL = "UPDATE orders_order SET {sets} WHERE id = %s AND status IN ({statuses})"


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
    if to == S.CONFIRMED:
        fields["confirmed_at"] = now
    event_data = dict(data or {})
    if failure_reason is not None:
        event_data.setdefault("reason", failure_reason)
    rows = [(str(type), data or {}) for type, data in events]
    rows.append((STATUS_EVENTS[to], event_data))
    connection = transaction.get_connection()
    _, json, at_field, updated_at, _ = _fields()
    # The same placeholders and values as `filter(pk=..., status__in=...).update(...)`:
    # every column set here is a plain string or (updated_at, confirmed_at) a datetime.
    prepared_now = updated_at.get_db_prep_value(now, connection)
    sets = ", ".join(f"{name} = %s" for name in fields)
    params: list[Any] = [
        prepared_now if name in ("updated_at", "confirmed_at") else str(value)
        for name, value in fields.items()
    ]
    params.append(Order._meta.pk.get_db_prep_value(order.pk, connection))
    params += [str(status) for status in allowed_from]
    statuses = ", ".join(["%s"] * len(allowed_from))
    if connection.vendor == "postgresql":
        params.append(at_field.get_db_prep_value(now, connection))
        for event_type, payload in rows:
            params += [event_type, json.get_db_prep_value(payload, connection)]
        sql = _TRANSITION_SQL.format(sets=sets, statuses=statuses, values=_event_values(len(rows)))
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            recorded = cursor.fetchall()
        if not recorded:
            return False
        for event_id, event_type in recorded:
            order_event_announce(order.pk, event_id, event_type)
        transaction.on_commit(lambda: _count(order, to, now, failure_reason))
    else:
        # No savepoint inside a caller's transaction: nothing here is retried after an
        # error, which rolls the caller's transaction back as a whole.
        with transaction.atomic(savepoint=False):
            with connection.cursor() as cursor:
                cursor.execute(_TRANSITION_ONLY_SQL.format(sets=sets, statuses=statuses), params)
                moved = cursor.rowcount
            if not moved:
                return False
            order_events_record(order_id=order.pk, events=rows)
            transaction.on_commit(lambda: _count(order, to, now, failure_reason))
    for name, value in fields.items():
        setattr(order, name, value)
    return True


def _count(order: Order, status: str, at: Any, failure_reason: str | None) -> None:
    if status == S.CONFIRMED:
        metrics.ORDER_DURATION_SECONDS.observe((at - order.created_at).total_seconds())
    elif status == S.PAYMENT_FAILED:
        metrics.error_count(metrics.PAYMENT_ERROR)
    elif status == S.CANCELLED and failure_reason == FailureReason.FULFILMENT_UNAVAILABLE:
        metrics.error_count(metrics.FULFILMENT_ERROR)
    # Last, so that a scrape that sees the order counted sees the rest of it too.
    if status == S.CONFIRMED or status in TERMINAL_STATUSES:
        metrics.ORDERS_TOTAL.labels(channel=order.channel, status=status).inc()
