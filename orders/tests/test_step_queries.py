"""Statements per pipeline step for a plain OTC order, pinned so that a change that adds
round trips to the hot path shows up here (scripts/step_queries.py prints them for a
live database, where each transaction's BEGIN/COMMIT and the after-commit receivers of
the events are counted too). Inside a test's transaction a step's own transactions are
savepoints (SAVEPOINT/RELEASE counted instead of BEGIN/COMMIT) and after-commit
receivers do not run."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.enums import OrderStatus
from orders.models import OrderStep
from orders.pipeline import INLINE_STEPS

pytestmark = pytest.mark.django_db

# prescription: the lines with their order; the move to processing, its event and the
# counted run (one transaction); the verdict.
# stock: lines+order; the run; the centres; reservation, locked batches, items, one
# batch update (one transaction); the outcome with its event (one transaction).
# payment_prepare: the order; the run; the payment (a savepoint here, none outside a
# transaction); the intent; the outcome with its event.
# charge: steps+order; the run; order lock (see the expiry job), payment lock, attempts,
# the claimed attempt (one transaction); attempt and payment outcome (one transaction on
# SQLite, one statement on PostgreSQL); step outcome and event, with the order's status.
# shipment: steps+order; the run; shipment, item and claimed attempt (one statement on
# PostgreSQL, a savepoint here; one transaction on SQLite);
# attempt and shipment outcome (as the charge's); step outcome and event, with the
# order's status.
# confirm: order locked with its booking checked; reservation, its items, one batch
# update; the status move with both events (one transaction).
# A step's outcome with its events, and a status move with its events, are one
# transaction (UPDATE and INSERT) on SQLite and one statement on PostgreSQL; on SQLite
# the order's status that comes with a step's outcome is one more statement after it.
STATEMENTS = {
    "sqlite": {
        "prescription": 8,
        "stock": 14,
        "payment_prepare": 11,
        "charge": 17,
        "shipment": 16,
        "confirm": 8,
    },
    "postgresql": {
        "prescription": 6,
        "stock": 10,
        "payment_prepare": 7,
        "charge": 10,
        "shipment": 7,
        "confirm": 7,
    },
}


def test_each_step_of_an_otc_order_costs_its_pinned_number_of_statements(place):
    place(items=[("PARA-500", 1)])  # a first order warms what a running worker has warm
    order = place(items=[("PARA-500", 1)], run=False, customer_id="C-2")
    counts = {}
    for step, function in INLINE_STEPS:
        with CaptureQueriesContext(connection) as queries:
            function(order.pk)
        counts[str(step)] = len(queries)
    order.refresh_from_db()
    assert order.status == OrderStatus.CONFIRMED
    assert all(OrderStep.objects.filter(order=order).values_list("ok", flat=True))
    assert counts == STATEMENTS[connection.vendor]
