"""Reads of forecasting: the current replenishment rows and a series' demand history."""

from __future__ import annotations

import datetime

from django.db.models import QuerySet

from forecasting.enums import RunStatus
from forecasting.models import DemandDay, ForecastRun, Replenishment


def replenishment_current(*, center: str = "") -> QuerySet[Replenishment]:
    """The current row of every SKU and centre (of one centre with `center`), most urgent
    first: lowest days of cover less lead time; no-demand rows last."""
    rows = Replenishment.objects.filter(current=True).select_related("product", "center", "run")
    if center:
        rows = rows.filter(center__code=center)
    return rows.order_by("urgency", "pk")


def forecast_run_latest() -> ForecastRun | None:
    return ForecastRun.objects.order_by("-started_at").first()


def forecast_run_succeeded(*, as_of: datetime.date) -> bool:
    """Whether a run of every SKU and centre as of this day succeeded."""
    return ForecastRun.objects.filter(
        as_of=as_of, status=RunStatus.SUCCEEDED, skus=[], centers=[]
    ).exists()


def demand_history(
    *, product_id: int, center_id: int, end: datetime.date, days: int
) -> list[tuple[datetime.date, int]]:
    """Units per day over the `days` days before `end`, zero-filled."""
    start = end - datetime.timedelta(days=days)
    units = dict(
        DemandDay.objects.filter(
            product_id=product_id, center_id=center_id, day__gte=start, day__lt=end
        ).values_list("day", "units")
    )
    return [
        (day, units.get(day, 0))
        for day in (start + datetime.timedelta(days=n) for n in range(days))
    ]
