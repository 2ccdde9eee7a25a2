"""Stock for an in-store pickup: reserved, swapped and offered as substitutes from the
order's own centre only, whatever the other centres hold."""

import uuid

import pytest

from inventory.models import FulfillmentCenter, StockBatch
from inventory.selectors import product_substitutes
from inventory.services import LineRequest, stock_reserve, stock_swap_held_sku
from inventory.tests.factories import CenterFactory, ProductFactory, StockBatchFactory

pytestmark = pytest.mark.django_db
AMOX = "amoxicillin 500 mg capsule"


@pytest.fixture
def centres():
    """TAB at the first centre (100) and the second (5); a substitute of AMX at the second."""
    first = CenterFactory(code="FIRST", priority=1, pincode_prefixes=["560"])
    second = CenterFactory(code="SECOND", priority=2, pincode_prefixes=["110"])
    tab = ProductFactory(sku="TAB")
    StockBatchFactory(product=tab, center=first, batch="T-FIRST", on_hand=100)
    StockBatchFactory(product=tab, center=second, batch="T-SECOND", on_hand=5)
    amx = ProductFactory(sku="AMX", composition=AMOX, schedule="h")
    generic = ProductFactory(sku="AMX-G", composition=AMOX, schedule="h")
    StockBatchFactory(product=amx, center=second, batch="A-SECOND", on_hand=10)
    StockBatchFactory(product=generic, center=second, batch="G-SECOND", on_hand=10)
    return first, second


def test_a_pickup_reserves_at_its_centre_only(centres):
    outcome = stock_reserve(order_id=uuid.uuid4(), lines=[LineRequest("TAB", 4)], center="SECOND")

    assert outcome.ok
    assert [(a.center, a.batch, a.quantity) for a in outcome.allocations] == [
        ("SECOND", "T-SECOND", 4)
    ]
    assert StockBatch.objects.get(batch="T-FIRST").reserved == 0


def test_short_at_the_pickup_centre_or_the_centre_inactive_is_out_of_stock(centres):
    short = stock_reserve(order_id=uuid.uuid4(), lines=[LineRequest("TAB", 6)], center="SECOND")
    FulfillmentCenter.objects.filter(code="FIRST").update(active=False)
    closed = stock_reserve(order_id=uuid.uuid4(), lines=[LineRequest("TAB", 1)], center="FIRST")

    assert (short.ok, short.reason) == (False, "out_of_stock")
    assert (closed.ok, closed.reason) == (False, "out_of_stock")
    assert sum(StockBatch.objects.values_list("reserved", flat=True)) == 0


def test_substitutes_of_a_pickup_come_from_its_centre(centres):
    assert [s.sku for s in product_substitutes(sku="AMX", center="SECOND")] == ["AMX-G"]
    assert product_substitutes(sku="AMX", center="FIRST") == []

    order_id = uuid.uuid4()
    assert stock_reserve(order_id=order_id, lines=[LineRequest("AMX", 2)], center="SECOND").ok
    swapped = stock_swap_held_sku(
        order_id=order_id, sku="AMX", substitute_sku="AMX-G", quantity=2, center="SECOND"
    )
    assert [(a.center, a.sku) for a in swapped.allocations] == [("SECOND", "AMX-G")]
