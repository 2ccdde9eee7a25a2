"""History for forecasting tests, written as past orders through the real models (the
demo history writer), from processes whose truth the tests know."""

from __future__ import annotations

import datetime

import numpy as np
from django.utils import timezone

from core.models import ApiClient
from core.tests.factories import ApiClientFactory
from inventory.models import FulfillmentCenter, Product
from orders.services.demo_history import Written, order_history_write


def past_days(count: int) -> list[datetime.date]:
    """The `count` days before today, oldest first."""
    today = timezone.localdate()
    return [today - datetime.timedelta(days=count - n) for n in range(count)]


def history_write(
    units: dict[tuple[str, str], np.ndarray | list[int]],
    days: list[datetime.date],
    *,
    client: ApiClient | None = None,
    seed: int = 1,
) -> Written:
    """`units[(sku, centre code)][i]` units sold on `days[i]`, as delivered orders."""
    products = dict(Product.objects.values_list("sku", "pk"))
    centers = dict(FulfillmentCenter.objects.values_list("code", "pk"))
    demand = {
        (products[sku], centers[code]): np.asarray(series) for (sku, code), series in units.items()
    }
    return order_history_write(
        client=client or ApiClientFactory(),
        demand=demand,
        days=days,
        lines_per_order=50,
        units_per_line=100,
        return_share=0.0,
        rng=np.random.default_rng(seed),
    )
