"""Daily demand from the orders' committed stock, less units that came back, built
incrementally."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from core.tests.factories import ApiClientFactory
from forecasting.models import DemandBuild, DemandDay
from forecasting.services import demand_build
from forecasting.tests.factories import history_write, past_days
from inventory.models import ReservationItem
from inventory.services import stock_take_back
from orders.models import Order
from orders.services.cancellation import order_cancel
from orders.tests.factories import place_order

pytestmark = pytest.mark.django_db


def demand(sku: str, center: str) -> dict[datetime.date, tuple[int, int, int]]:
    rows = DemandDay.objects.filter(product__sku=sku, center__code=center)
    return {r.day: (r.sold, r.returned, r.units) for r in rows}


def test_a_confirmed_order_counts_at_its_centre_and_a_return_takes_it_back(
    demo_catalog, simulator, settings, django_capture_on_commit_callbacks
):
    settings.COT_PIPELINE_MODE = "inline"
    with django_capture_on_commit_callbacks(execute=True):
        order = place_order(ApiClientFactory(), items=[("PARA-500", 3)])
    order.refresh_from_db()
    assert order.status == "confirmed"
    # A cancelled order gives its stock back: it sold nothing.
    with django_capture_on_commit_callbacks(execute=True):
        cancelled = place_order(ApiClientFactory(name="c2"), items=[("PARA-500", 5)])
    with django_capture_on_commit_callbacks(execute=True):
        order_cancel(order=cancelled, by="client", actor="c2", note="changed mind")
    assert Order.objects.get(pk=cancelled.pk).status == "cancelled"

    today = timezone.localdate()
    demand_build(through=today)
    assert demand("PARA-500", "BLR-1") == {today: (3, 0, 3)}

    item = ReservationItem.objects.select_related("batch").get(reservation__order_id=order.pk)
    stock_take_back(
        order_id=order.pk,
        reference="return:test",
        center="BLR-1",
        sku="PARA-500",
        batch=item.batch.batch,
        quantity=1,
    )
    demand_build(through=today)
    assert demand("PARA-500", "BLR-1") == {today: (3, 1, 2)}


def test_builds_are_incremental_with_an_overlap_for_late_returns(demo_catalog, settings):
    settings.COT_FORECAST_REBUILD_DAYS = 3
    days = past_days(10)
    history_write({("CETI-10", "DEL-1"): [2] * 10}, days)
    yesterday = days[-1]
    first = demand_build()
    assert (first.start, first.through, first.rows) == (days[0], yesterday, 10)
    assert DemandBuild.objects.get().built_through == yesterday

    # Rows older than the overlap are final: a second build only re-does the last 3 days.
    DemandDay.objects.filter(day=days[0]).update(units=99)
    again = demand_build()
    assert again.start == yesterday - datetime.timedelta(days=2) and again.rows == 3
    assert demand("CETI-10", "DEL-1")[days[0]][2] == 99
    assert all(units == 2 for _, _, units in list(demand("CETI-10", "DEL-1").values())[1:])
