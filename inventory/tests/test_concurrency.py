"""No oversell under concurrency: many threads, each with its own database connection
(Django gives every thread its own), race for the last units. On PostgreSQL the batches'
row locks queue them; on SQLite the IMMEDIATE transactions do. The live API + worker
version of this proof is in tests/e2e/test_stock_flow.py."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from django.db import connections

from inventory.models import Reservation, StockBatch
from inventory.services import LineRequest, stock_commit, stock_release, stock_reserve
from inventory.tests.factories import CenterFactory, ProductFactory, StockBatchFactory

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 24
T = TypeVar("T")


def race(n: int, work: Callable[[int], T]) -> list[T]:
    """Run `work(i)` for i in range(n) in n threads released at the same moment."""
    start = threading.Barrier(n)

    def run(i: int) -> T:
        try:
            start.wait(timeout=30)
            return work(i)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_exactly_as_many_orders_succeed_as_there_are_units():
    one = CenterFactory(code="ONE", priority=1, pincode_prefixes=["560"])
    two = CenterFactory(code="TWO", priority=2, pincode_prefixes=["560"])
    a, b = ProductFactory(sku="A"), ProductFactory(sku="B")
    for center in (one, two):
        StockBatchFactory(product=a, center=center, on_hand=2)
        StockBatchFactory(product=a, center=center, on_hand=1)
        StockBatchFactory(product=b, center=center, on_hand=3)

    def order(i: int):
        # Half the orders list their lines the other way round: the locks are still
        # taken in primary-key order, so no two transactions wait for each other in a cycle.
        lines = [LineRequest(sku="A", quantity=1), LineRequest(sku="B", quantity=1)]
        return stock_reserve(
            order_id=uuid.uuid4(), lines=lines if i % 2 else lines[::-1], pincode="560001"
        )

    outcomes = race(THREADS, order)

    assert sum(o.ok for o in outcomes) == 6  # 3 units of A and B at each centre
    assert {o.reason for o in outcomes if not o.ok} == {"out_of_stock"}
    assert Reservation.objects.count() == 6
    for batch in StockBatch.objects.all():
        assert batch.reserved == batch.on_hand, batch


def test_concurrent_commit_and_release_of_one_reservation_settle_it_once():
    batch = StockBatchFactory(product=ProductFactory(sku="A"), center=CenterFactory(), on_hand=5)
    order_id = uuid.uuid4()
    assert stock_reserve(
        order_id=order_id, lines=[LineRequest(sku="A", quantity=2)], pincode="560001"
    ).ok

    settled = race(8, lambda i: (stock_commit if i % 2 else stock_release)(order_id=order_id))

    assert settled.count(True) == 1
    batch.refresh_from_db()
    assert batch.reserved == 0
    assert batch.on_hand in (3, 5)  # committed (left the shelf) or released, never both
    status = Reservation.objects.get(order_id=order_id).status
    assert (status == "committed") == (batch.on_hand == 3)


def test_concurrent_deliveries_of_one_orders_step_reserve_once():
    StockBatchFactory(product=ProductFactory(sku="A"), center=CenterFactory(), on_hand=10)
    order_id = uuid.uuid4()

    outcomes = race(
        8,
        lambda i: stock_reserve(
            order_id=order_id, lines=[LineRequest(sku="A", quantity=3)], pincode="560001"
        ),
    )

    assert all(o.ok for o in outcomes) and len(set(outcomes)) == 1
    assert StockBatch.objects.get().reserved == 3
