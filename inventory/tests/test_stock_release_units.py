"""Some committed units of an order back on the shelf (its lines cancelled before pickup):
into the batches they came from, the latest-expiring first; the reservation keeps the
rest, so a later whole-order restock gives back only that."""

import datetime
import uuid

import pytest

from inventory.enums import ReservationStatus
from inventory.models import Reservation, ReservationItem, StockBatch
from inventory.services import (
    LineRequest,
    UnitsNotCommitted,
    stock_commit,
    stock_release_units,
    stock_reserve,
    stock_restock,
)
from inventory.tests.factories import CenterFactory, ProductFactory, StockBatchFactory
from inventory.tests.test_concurrency import race

pytestmark = pytest.mark.django_db


def in_days(n: int) -> datetime.date:
    return datetime.date.today() + datetime.timedelta(days=n)


@pytest.fixture
def committed():
    """An order of 5 A (FEFO: 3 from SOON, 2 from LATER) and 1 B, committed."""
    center = CenterFactory(code="BLR-1", pincode_prefixes=["560"])
    a, b = ProductFactory(sku="A"), ProductFactory(sku="B")
    StockBatchFactory(product=a, center=center, batch="SOON", expires_on=in_days(60), on_hand=3)
    StockBatchFactory(product=a, center=center, batch="LATER", expires_on=in_days(300), on_hand=9)
    StockBatchFactory(product=b, center=center, batch="B1", on_hand=4)
    order_id = uuid.uuid4()
    lines = [LineRequest(sku="A", quantity=5), LineRequest(sku="B", quantity=1)]
    assert stock_reserve(order_id=order_id, lines=lines, pincode="560001").ok
    assert stock_commit(order_id=order_id)
    return order_id


def on_hand() -> dict[str, int]:
    return dict(StockBatch.objects.values_list("batch", "on_hand"))


def held(order_id: uuid.UUID) -> list[tuple[str, int]]:
    return sorted(
        ReservationItem.objects.filter(reservation__order_id=order_id).values_list(
            "batch__batch", "quantity"
        )
    )


def test_units_go_back_latest_expiring_batch_first(committed):
    assert on_hand() == {"SOON": 0, "LATER": 7, "B1": 3}

    released = stock_release_units(order_id=committed, sku="A", quantity=3)

    assert [(a.center, a.sku, a.batch, a.quantity) for a in released] == [
        ("BLR-1", "A", "LATER", 2),
        ("BLR-1", "A", "SOON", 1),
    ]
    assert on_hand() == {"SOON": 1, "LATER": 9, "B1": 3}
    # LATER gave back all it held for the order: its item is gone (never 0 units).
    assert held(committed) == [("B1", 1), ("SOON", 2)]
    assert StockBatch.objects.filter(reserved__gt=0).count() == 0


def test_a_later_whole_order_restock_gives_back_only_the_rest(committed):
    stock_release_units(order_id=committed, sku="A", quantity=4)
    assert stock_restock(order_id=committed)
    assert on_hand() == {"SOON": 3, "LATER": 9, "B1": 4}
    assert Reservation.objects.get(order_id=committed).status == ReservationStatus.RELEASED


def test_more_than_is_committed_changes_nothing(committed):
    before = (on_hand(), held(committed))
    with pytest.raises(UnitsNotCommitted):
        stock_release_units(order_id=committed, sku="A", quantity=6)
    with pytest.raises(UnitsNotCommitted):
        stock_release_units(order_id=committed, sku="NOT-ORDERED", quantity=1)
    with pytest.raises(UnitsNotCommitted):
        stock_release_units(order_id=uuid.uuid4(), sku="A", quantity=1)
    with pytest.raises(ValueError):
        stock_release_units(order_id=committed, sku="A", quantity=0)
    assert (on_hand(), held(committed)) == before


def test_held_or_released_stock_is_not_given_back_this_way(committed):
    assert stock_restock(order_id=committed)
    with pytest.raises(UnitsNotCommitted):
        stock_release_units(order_id=committed, sku="A", quantity=1)
    assert on_hand() == {"SOON": 3, "LATER": 9, "B1": 4}


@pytest.mark.django_db(transaction=True)
def test_concurrent_releases_never_give_back_more_than_was_committed(committed):
    def release(i: int) -> int:
        try:
            return len(stock_release_units(order_id=committed, sku="A", quantity=2))
        except UnitsNotCommitted:
            return 0

    outcomes = race(6, release)

    # 5 units committed: two releases of 2 fit, the others find too few left.
    assert sum(1 for n in outcomes if n) == 2
    assert on_hand()["SOON"] + on_hand()["LATER"] == 11
    assert held(committed) == [("B1", 1), ("SOON", 1)]
