import datetime
import uuid

import pytest
from django.db import IntegrityError, transaction

from inventory.enums import ReservationStatus
from inventory.models import Reservation, StockBatch
from inventory.services import LineRequest, stock_commit, stock_release, stock_reserve
from inventory.tests.factories import CenterFactory, ProductFactory, StockBatchFactory

pytestmark = pytest.mark.django_db
TODAY = datetime.date(2026, 11, 25)


def days(n: int) -> datetime.date:
    return TODAY + datetime.timedelta(days=n)


def reserve(lines, pincode="560001", order_id=None):
    return stock_reserve(
        order_id=order_id or uuid.uuid4(),
        lines=[LineRequest(sku=s, quantity=q) for s, q in lines],
        pincode=pincode,
        today=TODAY,
    )


def test_earliest_expiry_first_among_batches_with_enough_shelf_life():
    center = CenterFactory(code="BLR-1", pincode_prefixes=["560"])
    product = ProductFactory(sku="PARA-500")
    StockBatchFactory(product=product, center=center, batch="LATE", expires_on=days(300))
    StockBatchFactory(product=product, center=center, batch="SOON", expires_on=days(60), on_hand=3)
    StockBatchFactory(product=product, center=center, batch="TOO-SOON", expires_on=days(10))

    outcome = reserve([("PARA-500", 5)])

    assert outcome.ok
    assert [(a.batch, a.quantity) for a in outcome.allocations] == [("SOON", 3), ("LATE", 2)]
    assert StockBatch.objects.get(batch="TOO-SOON").reserved == 0


def test_only_short_dated_stock_is_out_of_stock():
    center = CenterFactory(pincode_prefixes=["560"])
    StockBatchFactory(product=ProductFactory(sku="A"), center=center, expires_on=days(29))
    assert reserve([("A", 1)]).reason == "out_of_stock"


def test_highest_priority_centre_that_can_serve_every_line():
    first = CenterFactory(code="ONE", priority=1, pincode_prefixes=["560"])
    second = CenterFactory(code="TWO", priority=2, pincode_prefixes=["56"])
    a, b = ProductFactory(sku="A"), ProductFactory(sku="B")
    StockBatchFactory(product=a, center=first)  # first lacks B
    StockBatchFactory(product=a, center=second)
    StockBatchFactory(product=b, center=second)

    assert {x.center for x in reserve([("A", 1), ("B", 1)]).allocations} == {"TWO"}
    assert {x.center for x in reserve([("A", 1)]).allocations} == {"ONE"}


def test_no_centre_serves_the_pincode():
    CenterFactory(pincode_prefixes=["110"])
    assert reserve([("A", 1)], pincode="560001").reason == "unserviceable_pincode"


def test_reserve_is_idempotent_per_order():
    StockBatchFactory(product=ProductFactory(sku="A"), center=CenterFactory(), on_hand=10)
    order_id = uuid.uuid4()
    first = reserve([("A", 4)], order_id=order_id)
    second = reserve([("A", 4)], order_id=order_id)
    assert first == second
    assert StockBatch.objects.get().reserved == 4


def test_release_and_commit_are_idempotent():
    StockBatchFactory(product=ProductFactory(sku="A"), center=CenterFactory(), on_hand=10)
    kept, dropped = uuid.uuid4(), uuid.uuid4()
    reserve([("A", 3)], order_id=kept)
    reserve([("A", 2)], order_id=dropped)

    assert stock_release(order_id=dropped) is True
    assert stock_release(order_id=dropped) is False
    assert stock_commit(order_id=kept) is True
    assert stock_commit(order_id=kept) is False
    assert stock_commit(order_id=dropped) is False  # released stays released

    batch = StockBatch.objects.get()
    assert (batch.on_hand, batch.reserved) == (7, 0)
    assert Reservation.objects.get(order_id=dropped).status == ReservationStatus.RELEASED


def test_not_enough_units_reserves_nothing():
    StockBatchFactory(product=ProductFactory(sku="A"), center=CenterFactory(), on_hand=2)
    assert reserve([("A", 3)]).reason == "out_of_stock"
    assert StockBatch.objects.get().reserved == 0
    assert not Reservation.objects.exists()


def test_database_refuses_reserving_more_than_on_hand():
    batch = StockBatchFactory(on_hand=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        StockBatch.objects.filter(pk=batch.pk).update(reserved=2)
