"""The order timeline's writes in SQL: the one place in `orders` that does not use the ORM.

Every order writes its timeline a dozen times on its way to `confirmed`: the events
(about nine), each step's counted run and recorded outcome (six each), two status moves.
Through the ORM each of these statements costs more Python than the database spends
running it (the queryset is built and compiled anew every time), and a compare-and-set
with its events is two statements. Here each is one static statement with bound values,
and on PostgreSQL a compare-and-set and its events are one statement (a data-modifying
CTE: the events exist only if the UPDATE changed its row). On SQLite the same writes are
two statements in one transaction.

Measured by `make bench` (docs/BENCHMARKS.md, 2026-12-05, zero at 19/s, two rounds
alternated in one session): with these writes through the ORM the stack spent 84 to 93 ms
of CPU per order, with them 76 ms (10 to 18 % less). In process, without Celery
(`scripts/step_profile.py`), the steps' Python went from 37 to 31 ms per order.

Values are prepared by the models' own fields (`get_db_prep_value`), so what is stored is
what the ORM would store. Runs on PostgreSQL and SQLite (3.35+, for RETURNING).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import transaction

from orders.models import Order, OrderEvent, OrderStep

Events = Sequence[tuple[str, dict[str, Any]]]

_EVENTS = "INSERT INTO orders_orderevent (order_id, type, data, at) VALUES {rows} RETURNING id"

# The compare-and-set and its events in one statement; `{rows}` is one `(n, %s, %s)` per
# event, ORDER BY n keeps their ids in the given order.
_WITH_EVENTS = """
WITH changed AS ({update} RETURNING {key})
INSERT INTO orders_orderevent (order_id, type, data, at)
SELECT changed.{key}, e.type, e.data::jsonb, %s
FROM changed CROSS JOIN (VALUES {rows}) AS e (n, type, data)
ORDER BY e.n
RETURNING id
"""

_STEP_OUTCOME = (
    "UPDATE orders_orderstep SET ok = %s, result = %s, data = %s, updated_at = %s "
    "WHERE id = %s AND ok IS NULL"
)

# A first run inserts the row with one attempt; a re-run of an unfinished step adds one;
# a finished step's row comes back unchanged.
_STEP_COUNT = """
INSERT INTO orders_orderstep (created_at, updated_at, order_id, step, ok, result, data, attempts)
VALUES (%s, %s, %s, %s, NULL, '', %s, 1)
ON CONFLICT (order_id, step) DO UPDATE SET attempts = orders_orderstep.attempts
    + CASE WHEN orders_orderstep.ok IS NULL THEN 1 ELSE 0 END
RETURNING id, ok, result, attempts
"""


def _prep(model: type, name: str, value: Any, connection: Any) -> Any:
    return model._meta.get_field(name).get_db_prep_value(value, connection)


def _event_params(
    events: Events, order_id: uuid.UUID | None, at: datetime.datetime, connection: Any
) -> list[Any]:
    params: list[Any] = []
    for event_type, data in events:
        if order_id is not None:
            params.append(_prep(OrderEvent, "order", order_id, connection))
        params += [str(event_type), _prep(OrderEvent, "data", data, connection)]
        if order_id is not None:
            params.append(_prep(OrderEvent, "at", at, connection))
    return params


def events_insert(*, order_id: uuid.UUID, events: Events, at: datetime.datetime) -> list[int]:
    """Append events to an order's timeline in one INSERT; their ids, in order (rows come
    back in the order of VALUES on both databases, which bulk_create relies on too)."""
    if not events:
        return []
    connection = transaction.get_connection()
    sql = _EVENTS.format(rows=", ".join(["(%s, %s, %s, %s)"] * len(events)))
    with connection.cursor() as cursor:
        cursor.execute(sql, _event_params(events, order_id, at, connection))
        return [row[0] for row in cursor.fetchall()]


def _changed_with_events(
    *,
    update: str,
    update_params: list[Any],
    key: str,
    order_id: uuid.UUID,
    events: Events,
    at: datetime.datetime,
) -> list[int] | None:
    """Run a compare-and-set UPDATE and, only if it changed its row, insert `events`.
    Returns the events' ids, or None when the UPDATE changed nothing."""
    connection = transaction.get_connection()
    if not events:
        with connection.cursor() as cursor:
            cursor.execute(update, update_params)
            return [] if cursor.rowcount else None
    if connection.vendor == "postgresql":
        rows = ", ".join(f"({n}, %s, %s)" for n in range(len(events)))
        sql = _WITH_EVENTS.format(update=update, key=key, rows=rows)
        params = [
            *update_params,
            _prep(OrderEvent, "at", at, connection),
            *_event_params(events, None, at, connection),
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            ids = [row[0] for row in cursor.fetchall()]
        return ids or None
    # Both or neither: no savepoint inside a caller's transaction (nothing here is retried
    # after an error, which rolls the caller's transaction back as a whole).
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute(update, update_params)
            changed = cursor.rowcount
        if not changed:
            return None
        return events_insert(order_id=order_id, events=events, at=at)


def step_outcome_record(
    *,
    step_id: int,
    order_id: uuid.UUID,
    ok: bool,
    result: str,
    data: dict[str, Any],
    events: Events,
    at: datetime.datetime,
) -> list[int] | None:
    """A step's outcome, once (compare-and-set on `ok IS NULL`), with its events.
    Returns the events' ids, or None when another run recorded an outcome first."""
    connection = transaction.get_connection()
    params = [
        ok,
        result,
        _prep(OrderStep, "data", data, connection),
        _prep(OrderStep, "updated_at", at, connection),
        step_id,
    ]
    return _changed_with_events(
        update=_STEP_OUTCOME,
        update_params=params,
        key="order_id",
        order_id=order_id,
        events=events,
        at=at,
    )


def order_move(
    *,
    order_id: uuid.UUID,
    fields: dict[str, Any],
    allowed_from: Sequence[str],
    events: Events,
    at: datetime.datetime,
) -> list[int] | None:
    """Set `fields` on the order if its status is still one of `allowed_from`, with its
    events. Returns the events' ids, or None when another actor moved the order first."""
    connection = transaction.get_connection()
    sets = ", ".join(f"{Order._meta.get_field(name).column} = %s" for name in fields)
    statuses = ", ".join(["%s"] * len(allowed_from))
    # Column names come from the model, every value is bound.
    update = f"UPDATE orders_order SET {sets} WHERE id = %s AND status IN ({statuses})"  # noqa: S608
    params = [_prep(Order, name, value, connection) for name, value in fields.items()]
    params += [_prep(Order, "id", order_id, connection), *map(str, allowed_from)]
    return _changed_with_events(
        update=update, update_params=params, key="id", order_id=order_id, events=events, at=at
    )


def step_count(*, order_id: uuid.UUID, step: str, at: datetime.datetime) -> OrderStep:
    """Count a run of `step` in one statement (an upsert); the row as it is after it."""
    connection = transaction.get_connection()
    params = [
        _prep(OrderStep, "created_at", at, connection),
        _prep(OrderStep, "updated_at", at, connection),
        _prep(OrderStep, "order", order_id, connection),
        str(step),
        _prep(OrderStep, "data", {}, connection),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_STEP_COUNT, params)
        step_id, ok, result, attempts = cursor.fetchone()
    return OrderStep(
        id=step_id,
        order_id=order_id,
        step=step,
        ok=None if ok is None else bool(ok),
        result=result,
        attempts=attempts,
    )
