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


def test_split_across_the_fewest_centres_when_no_single_centre_can_serve():
    one = CenterFactory(code="ONE", priority=1, pincode_prefixes=["560"])
    two = CenterFactory(code="TWO", priority=2, pincode_prefixes=["560"])
    three = CenterFactory(code="THREE", priority=3, pincode_prefixes=["560"])
    a, b = ProductFactory(sku="A"), ProductFactory(sku="B")
    StockBatchFactory(product=a, center=one, batch="A1", on_hand=5)
    StockBatchFactory(product=b, center=two, batch="B2", on_hand=1)  # too few for B
    StockBatchFactory(product=b, center=three, batch="B3", on_hand=5)

    outcome = reserve([("A", 2), ("B", 3)])

    # {ONE, THREE} is the only two-centre set that fits; TWO would make three shipments.
    assert outcome.ok
    assert sorted((x.center, x.sku, x.batch, x.quantity) for x in outcome.allocations) == [
        ("ONE", "A", "A1", 2),
        ("THREE", "B", "B3", 3),
    ]
    assert StockBatch.objects.get(batch="B2").reserved == 0


def test_a_line_no_centre_holds_alone_is_spread_fefo_in_priority_order():
    one = CenterFactory(code="ONE", priority=1, pincode_prefixes=["560"])
    two = CenterFactory(code="TWO", priority=2, pincode_prefixes=["56"])
    far = CenterFactory(code="FAR", priority=3, pincode_prefixes=["110"])
    a = ProductFactory(sku="A")
    StockBatchFactory(product=a, center=one, batch="ONE-LATE", expires_on=days(300), on_hand=2)
    StockBatchFactory(product=a, center=one, batch="ONE-SOON", expires_on=days(40), on_hand=1)
    StockBatchFactory(product=a, center=one, batch="ONE-SHORT", expires_on=days(5), on_hand=9)
    StockBatchFactory(product=a, center=two, batch="TWO", on_hand=4)
    StockBatchFactory(product=a, center=far, batch="FAR", on_hand=50)  # wrong pincode

    outcome = reserve([("A", 5)])

    assert [(x.center, x.batch, x.quantity) for x in outcome.allocations] == [
        ("ONE", "ONE-SOON", 1),
        ("ONE", "ONE-LATE", 2),
        ("TWO", "TWO", 2),
    ]
    assert not StockBatch.objects.filter(batch__in=["FAR", "ONE-SHORT"], reserved__gt=0).exists()


def test_split_prefers_the_higher_priority_pair_and_out_of_stock_when_all_together_fall_short():
    centers = [CenterFactory(code=f"C{i}", priority=i, pincode_prefixes=["560"]) for i in (1, 2, 3)]
    a = ProductFactory(sku="A")
    for center in centers:
        StockBatchFactory(product=a, center=center, batch=f"B-{center.code}", on_hand=3)

    assert {x.center for x in reserve([("A", 5)]).allocations} == {"C1", "C2"}
    # 4 left (C2: 1, C3: 3): 5 more cannot be served even together.
    assert reserve([("A", 5)]).reason == "out_of_stock"
    assert sum(StockBatch.objects.values_list("reserved", flat=True)) == 5


def test_repeated_sku_lines_are_served_as_one():
    StockBatchFactory(product=ProductFactory(sku="A"), center=CenterFactory(), on_hand=3)
    assert reserve([("A", 2), ("A", 2)]).reason == "out_of_stock"
    assert reserve([("A", 1), ("A", 2)]).ok
    assert StockBatch.objects.get().reserved == 3
