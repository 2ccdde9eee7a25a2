"""The writes of forecasting: the demand table, and a forecasting run with its
replenishment rows (made current all at once when the run succeeds)."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Min, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from forecasting.engine import SeriesForecast, forecast_many, since_first_sale
from forecasting.enums import DemandPattern, RunStatus
from forecasting.models import (
    CenterReplenishmentSettings,
    DemandBuild,
    DemandDay,
    ForecastRun,
    Replenishment,
)
from forecasting.replenishment import (
    BatchStock,
    Outlet,
    Plan,
    Policy,
    plan_series,
    transfers_for,
)
from inventory.enums import ReservationStatus
from inventory.models import FulfillmentCenter, Product, ReservationItem, StockBatch, StockReturn
from orders.models import Order

logger = logging.getLogger(__name__)

# Days of orders aggregated per query when building demand: bounds memory on a big build.
BUILD_WINDOW_DAYS = 14
# Series fitted per statsforecast call (and per step of the progress bar).
CHUNK_SERIES = 500
# Runs whose non-current rows are kept for comparison; older ones are deleted.
KEEP_RUNS = 10
# A run still `running` after this long died without saying so: another may start.
STALE_RUN = datetime.timedelta(hours=6)

SeriesKey = tuple[int, int]  # (product id, centre id)


class UnknownScope(ValueError):
    """A SKU or centre code the catalog does not have."""


class RunInProgress(RuntimeError):
    """Another forecasting run is still working."""


def _midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)


def _confirmed_between(start: datetime.date, end: datetime.date) -> Q:
    return Q(confirmed_at__gte=_midnight(start), confirmed_at__lt=_midnight(end))


def _demand_window(start: datetime.date, end: datetime.date) -> list[DemandDay]:
    """Demand rows for the days [start, end): committed units of the orders confirmed on
    each day, less the units of those orders that came back (returns to origin and
    customer returns, restocked or written off), by product and centre of the batch."""
    orders = Order.objects.filter(_confirmed_between(start, end))
    sold = (
        ReservationItem.objects.filter(
            reservation__status=ReservationStatus.COMMITTED,
            reservation__order_id__in=orders.values("pk"),
        )
        .annotate(
            day=Subquery(
                Order.objects.filter(pk=OuterRef("reservation__order_id")).values(
                    "confirmed_at__date"
                )[:1]
            )
        )
        .values_list("batch__product_id", "batch__center_id", "day")
        .annotate(units=Sum("quantity"))
        .order_by()
    )
    returned = (
        StockReturn.objects.filter(order_id__in=orders.values("pk"))
        .annotate(
            day=Subquery(
                Order.objects.filter(pk=OuterRef("order_id")).values("confirmed_at__date")[:1]
            )
        )
        .values_list("batch__product_id", "batch__center_id", "day")
        .annotate(units=Sum("quantity"))
        .order_by()
    )
    back = {(p, c, d): units for p, c, d, units in returned}
    rows = []
    for product_id, center_id, day, units in sold:
        came_back = min(back.get((product_id, center_id, day), 0), units)
        rows.append(
            DemandDay(
                product_id=product_id,
                center_id=center_id,
                day=day,
                sold=units,
                returned=came_back,
                units=units - came_back,
            )
        )
    return rows


@dataclass(frozen=True)
class BuildResult:
    start: datetime.date | None
    through: datetime.date
    rows: int


def demand_build(*, through: datetime.date | None = None) -> BuildResult:
    """Bring the demand table up to `through` (default: yesterday): the days since the last
    build, and COT_FORECAST_REBUILD_DAYS before it again for units that came back late.
    A first build starts at the first confirmed order. One transaction."""
    through = through or timezone.localdate() - datetime.timedelta(days=1)
    with transaction.atomic():
        state = DemandBuild.objects.select_for_update().filter(name="daily").first()
        if state is not None:
            start = state.built_through - datetime.timedelta(
                days=settings.COT_FORECAST_REBUILD_DAYS - 1
            )
        else:
            first = Order.objects.filter(confirmed_at__isnull=False).aggregate(
                first=Min("confirmed_at")
            )["first"]
            start = first.date() if first else through + datetime.timedelta(days=1)
        rows = 0
        if start <= through:
            DemandDay.objects.filter(day__gte=start, day__lte=through).delete()
            window_start = start
            while window_start <= through:
                window_end = min(
                    window_start + datetime.timedelta(days=BUILD_WINDOW_DAYS),
                    through + datetime.timedelta(days=1),
                )
                batch = _demand_window(window_start, window_end)
                DemandDay.objects.bulk_create(batch, batch_size=5000)
                rows += len(batch)
                window_start = window_end
        built = max(through, state.built_through) if state else through
        DemandBuild.objects.update_or_create(name="daily", defaults={"built_through": built})
    logger.info("demand built", extra={"start": str(start), "through": str(through), "rows": rows})
    return BuildResult(start=start if start <= through else None, through=through, rows=rows)


def _policies(centers: Iterable[FulfillmentCenter]) -> dict[int, Policy]:
    configured = {
        s.center_id: s for s in CenterReplenishmentSettings.objects.filter(center__in=list(centers))
    }
    policies = {}
    for center in centers:
        own = configured.get(center.pk)
        policies[center.pk] = Policy(
            lead_time_days=(own and own.lead_time_days)
            or settings.COT_REPLENISHMENT_LEAD_TIME_DAYS,
            review_period_days=(own and own.review_period_days)
            or settings.COT_REPLENISHMENT_REVIEW_DAYS,
            service_level=settings.COT_REPLENISHMENT_SERVICE_LEVEL,
            floor_days=settings.COT_SHELF_LIFE_FLOOR_DAYS,
        )
    return policies


def _scope(
    skus: Sequence[str], centers: Sequence[str]
) -> tuple[list[Product], list[FulfillmentCenter]]:
    products = Product.objects.filter(active=True)
    if skus:
        known = set(Product.objects.filter(sku__in=skus).values_list("sku", flat=True))
        if missing := sorted(set(skus) - known):
            raise UnknownScope(f"unknown SKU: {', '.join(missing)}")
        products = products.filter(sku__in=skus)
    places = FulfillmentCenter.objects.filter(active=True)
    if centers:
        known = set(
            FulfillmentCenter.objects.filter(code__in=centers).values_list("code", flat=True)
        )
        if missing := sorted(set(centers) - known):
            raise UnknownScope(f"unknown centre: {', '.join(missing)}")
        places = places.filter(code__in=centers)
    return list(products), list(places)


def _history(
    product_ids: list[int], center_ids: list[int], start: datetime.date, days: int
) -> dict[SeriesKey, np.ndarray]:
    """Daily units per series over `days` from `start`, zero-filled."""
    series: dict[SeriesKey, np.ndarray] = {}
    rows = (
        DemandDay.objects.filter(
            product_id__in=product_ids,
            center_id__in=center_ids,
            day__gte=start,
            day__lt=start + datetime.timedelta(days=days),
        )
        .values_list("product_id", "center_id", "day", "units")
        .iterator(chunk_size=20000)
    )
    for product_id, center_id, day, units in rows:
        y = series.get((product_id, center_id))
        if y is None:
            y = series[(product_id, center_id)] = np.zeros(days)
        y[(day - start).days] = units
    return series


def _stock(product_ids: list[int], center_ids: list[int]) -> dict[SeriesKey, list[BatchStock]]:
    stock: dict[SeriesKey, list[BatchStock]] = {}
    rows = StockBatch.objects.filter(
        product_id__in=product_ids, center_id__in=center_ids, on_hand__gt=0
    ).values_list("product_id", "center_id", "batch", "expires_on", "on_hand", "reserved")
    for product_id, center_id, batch, expires_on, on_hand, reserved in rows.iterator(
        chunk_size=20000
    ):
        stock.setdefault((product_id, center_id), []).append(
            BatchStock(batch, expires_on, on_hand, reserved)
        )
    return stock


def _outside_outlets(
    product_ids: set[int], center_ids: list[int]
) -> dict[int, list[tuple[int, list[float]]]]:
    """Current forecasts of these products at centres outside this run's scope (a run
    for one centre still sends at-risk units to the others)."""
    outside: dict[int, list[tuple[int, list[float]]]] = {}
    rows = (
        Replenishment.objects.filter(current=True, product_id__in=product_ids)
        .exclude(center_id__in=center_ids)
        .exclude(pattern=DemandPattern.NONE)
        .values_list("product_id", "center_id", "forecast")
    )
    for product_id, center_id, forecast in rows:
        outside.setdefault(product_id, []).append((center_id, forecast.get("mean", [])))
    return outside


def forecast_run(
    *,
    as_of: datetime.date | None = None,
    skus: Sequence[str] = (),
    centers: Sequence[str] = (),
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ForecastRun:
    """Build demand, forecast every SKU and centre in scope (those that sold in the history
    window or hold stock), plan their replenishment, and make the results current in one
    transaction at the end. A failure leaves the previous results current and the run
    `failed`. `on_start(series)` and `on_progress(done)` report progress."""
    as_of = as_of or timezone.localdate()
    products, places = _scope(skus, centers)
    stale = timezone.now() - STALE_RUN
    if ForecastRun.objects.filter(status=RunStatus.RUNNING, started_at__gte=stale).exists():
        raise RunInProgress("another forecasting run is still working")
    horizon = settings.COT_FORECAST_HORIZON_DAYS
    run = ForecastRun.objects.create(
        as_of=as_of, horizon_days=horizon, skus=list(skus), centers=list(centers)
    )
    try:
        _forecast_into(run, products, places, on_start=on_start, on_progress=on_progress)
    except BaseException as exc:
        ForecastRun.objects.filter(pk=run.pk).update(
            status=RunStatus.FAILED, finished_at=timezone.now(), error=repr(exc)[:2000]
        )
        raise
    _prune()
    run.refresh_from_db()
    logger.info(
        "forecast run succeeded",
        extra={
            "run": run.pk,
            "series": run.series,
            "seconds": round((run.finished_at - run.started_at).total_seconds(), 1),
        },
    )
    return run


def _forecast_into(
    run: ForecastRun,
    products: list[Product],
    places: list[FulfillmentCenter],
    *,
    on_start: Callable[[int], None] | None,
    on_progress: Callable[[int], None] | None,
) -> None:
    as_of, horizon = run.as_of, run.horizon_days
    demand_build()
    days = settings.COT_FORECAST_HISTORY_DAYS
    start = as_of - datetime.timedelta(days=days)
    product_ids = [p.pk for p in products]
    center_ids = [c.pk for c in places]
    history = _history(product_ids, center_ids, start, days)
    stock = _stock(product_ids, center_ids)
    keys = sorted(set(history) | set(stock))
    if on_start:
        on_start(len(keys))
    forecasts: dict[SeriesKey, SeriesForecast] = {}
    for first in range(0, len(keys), CHUNK_SERIES):
        chunk = keys[first : first + CHUNK_SERIES]
        series = {i: since_first_sale(history.get(key, np.zeros(0))) for i, key in enumerate(chunk)}
        for i, result in forecast_many(series, horizon=horizon).items():
            forecasts[chunk[i]] = result
        if on_progress:
            on_progress(len(chunk))

    policies = _policies(places)
    plans: dict[SeriesKey, Plan] = {}
    for key in keys:
        f = forecasts[key]
        plans[key] = plan_series(
            as_of=as_of,
            batches=stock.get(key, []),
            pattern=f.pattern,
            mean=f.mean,
            hi95=f.hi95,
            history_std=f.history_std,
            horizon=horizon,
            policy=policies[key[1]],
        )
    codes = dict(FulfillmentCenter.objects.values_list("pk", "code"))
    _plan_transfers(as_of, keys, forecasts, plans, stock, center_ids, codes)

    rows = []
    for key in keys:
        f, plan, policy = forecasts[key], plans[key], policies[key[1]]
        rows.append(
            Replenishment(
                run=run,
                product_id=key[0],
                center_id=key[1],
                status=plan.status,
                pattern=f.pattern,
                model=f.model,
                adi=f.adi,
                cv2=f.cv2,
                history_days=f.history_days,
                mase=f.mase,
                forecast=(
                    {"mean": f.mean, "lo80": f.lo80, "hi80": f.hi80, "lo95": f.lo95, "hi95": f.hi95}
                    if f.mean
                    else {}
                ),
                daily_demand=plan.daily_demand,
                on_hand=plan.on_hand,
                reserved=plan.reserved,
                expiring_units=plan.expiring_units,
                at_risk_units=plan.at_risk_units,
                sellable_units=plan.sellable_units,
                days_of_cover=plan.days_of_cover,
                lead_time_days=policy.lead_time_days,
                review_period_days=policy.review_period_days,
                service_level=policy.service_level,
                order_up_to=plan.order_up_to,
                suggested_quantity=plan.suggested_quantity,
                transfers=plan.transfers,
                urgency=plan.urgency,
            )
        )
    with transaction.atomic():
        Replenishment.objects.bulk_create(rows, batch_size=2000)
        # What this run covered stops being current; the run's rows take its place.
        replaced = Replenishment.objects.filter(current=True)
        if run.skus:
            replaced = replaced.filter(product__sku__in=run.skus)
        if run.centers:
            replaced = replaced.filter(center__code__in=run.centers)
        replaced.update(current=False)
        Replenishment.objects.filter(run=run).update(current=True)
        ForecastRun.objects.filter(pk=run.pk).update(
            status=RunStatus.SUCCEEDED, finished_at=timezone.now(), series=len(rows)
        )


def _plan_transfers(
    as_of: datetime.date,
    keys: list[SeriesKey],
    forecasts: dict[SeriesKey, SeriesForecast],
    plans: dict[SeriesKey, Plan],
    stock: dict[SeriesKey, list[BatchStock]],
    center_ids: list[int],
    codes: dict[int, str],
) -> None:
    floor_days = settings.COT_SHELF_LIFE_FLOOR_DAYS
    with_risk = {key[0] for key in keys if plans[key].at_risk}
    if not with_risk:
        return
    outlets: dict[int, list[Outlet]] = {}
    for key in keys:
        if key[0] in with_risk and forecasts[key].mean:
            outlets.setdefault(key[0], []).append(
                Outlet(center=codes[key[1]], mean=forecasts[key].mean, batches=stock.get(key, []))
            )
    outside = _outside_outlets(with_risk, center_ids)
    if outside:
        outside_stock = _stock(list(outside), [c for rows in outside.values() for c, _ in rows])
        for product_id, rows in outside.items():
            for center_id, mean in rows:
                outlets.setdefault(product_id, []).append(
                    Outlet(
                        center=codes[center_id],
                        mean=mean,
                        batches=outside_stock.get((product_id, center_id), []),
                    )
                )
    for key in keys:
        plan = plans[key]
        if not plan.at_risk:
            continue
        others = [o for o in outlets.get(key[0], []) if o.center != codes[key[1]]]
        plan.transfers = transfers_for(plan.at_risk, others, as_of=as_of, floor_days=floor_days)


def _prune() -> None:
    """Keep the last KEEP_RUNS runs' rows; older runs keep only rows still current."""
    keep = list(
        ForecastRun.objects.order_by("-started_at").values_list("pk", flat=True)[:KEEP_RUNS]
    )
    Replenishment.objects.filter(current=False).exclude(run_id__in=keep).delete()
    ForecastRun.objects.exclude(pk__in=keep).filter(rows__isnull=True).delete()
