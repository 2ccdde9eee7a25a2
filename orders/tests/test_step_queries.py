"""Statements per pipeline step for a plain OTC order, held under a ceiling so that a
change that adds round trips to the hot path shows up here. scripts/step_queries.py
prints them for a live database, where each transaction's BEGIN/COMMIT and the
after-commit receivers of the events are counted too."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.enums import OrderStatus
from orders.models import OrderStep
from orders.pipeline import INLINE_STEPS

pytestmark = pytest.mark.django_db

# The most each step may cost, on either database. Inside a test's transaction a step's
# own transactions are savepoints (SAVEPOINT/RELEASE are counted), and after-commit
# receivers do not run. A ceiling, not an exact count: lower is always welcome.
CEILINGS = {
    "prescription": 7,
    "stock": 11,
    "payment_prepare": 9,
    "charge": 15,
    "shipment": 14,
    "confirm": 8,
}


def test_no_step_of_an_otc_order_costs_more_statements_than_its_ceiling(place):
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
    over = {step: n for step, n in counts.items() if n > CEILINGS[step]}
    assert not over, f"statements per step {counts}, ceilings {CEILINGS}"
