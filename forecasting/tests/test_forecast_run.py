"""A forecasting run against the database: demand from real order rows, forecasts that
fit a known process, all-or-nothing results, scoped runs, and the command's errors."""

from __future__ import annotations

import datetime

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from forecasting import services
from forecasting.enums import INTERMITTENT_PATTERNS, REGULAR_PATTERNS, ReplenishmentStatus
from forecasting.models import ForecastRun, Replenishment
from forecasting.tests.factories import history_write, past_days
from orders.services.demo_history import WEEKLY, DemandProcess

pytestmark = pytest.mark.django_db

REGULAR = ["PARA-500", "PARA-650", "CETI-10", "ORS-ORG", "VITC-500", "ZINC-20", "CALD-500",
           "MVIT-30", "BCOM-20", "IRON-FA"]  # fmt: skip
SLOW = ["SIME-DRP", "XYLO-NS", "POVI-OIN", "CLOT-CRM"]
HOLD_OUT = 28


def current(center: str = "BLR-1") -> dict[str, Replenishment]:
    rows = Replenishment.objects.filter(current=True, center__code=center).select_related("product")
    return {row.product.sku: row for row in rows}


def test_forecasts_fit_a_known_process(demo_catalog):
    """Weekly season plus Poisson noise, and Poisson slow movers: the held-out four weeks
    fall inside the 80 % interval on 70-90 % of days, and the model beats the seasonal
    naive forecast (MASE < 1) on at least 80 % of the regular series, in the backtest and
    on the held-out weeks."""
    rng = np.random.default_rng(42)
    days = past_days(182)
    units = {}
    for n, sku in enumerate(REGULAR):
        process = DemandProcess(level=6 + n, weekly=WEEKLY)
        units[(sku, "BLR-1")] = process.draw(days, days[0], rng)
    for sku in SLOW:
        units[(sku, "BLR-1")] = rng.poisson(0.2, len(days))
    history_write(units, days)
    as_of = days[-HOLD_OUT]

    call_command("forecast_demand", "--center", "BLR-1", "--as-of", as_of.isoformat(),
                 "--no-progress")  # fmt: skip

    rows = current()
    covered = total = 0
    held_out_better = backtest_better = 0
    for sku in REGULAR:
        row = rows[sku]
        assert row.pattern in REGULAR_PATTERNS, (sku, row.pattern)
        actual = units[(sku, "BLR-1")][-HOLD_OUT:]
        forecast = row.forecast
        inside = (np.array(forecast["lo80"]) <= actual) & (actual <= np.array(forecast["hi80"]))
        covered += int(inside.sum())
        total += HOLD_OUT
        last_week = units[(sku, "BLR-1")][-HOLD_OUT - 7 : -HOLD_OUT]
        naive_error = np.abs(actual - np.tile(last_week, 4)).mean()
        model_error = np.abs(actual - np.array(forecast["mean"])).mean()
        held_out_better += model_error < naive_error
        backtest_better += row.mase is not None and row.mase < 1
    assert 0.70 <= covered / total <= 0.90, covered / total
    assert held_out_better >= 0.8 * len(REGULAR), held_out_better
    assert backtest_better >= 0.8 * len(REGULAR), [rows[s].mase for s in REGULAR]
    for sku in SLOW:
        assert rows[sku].pattern in INTERMITTENT_PATTERNS, (sku, rows[sku].pattern)
        assert rows[sku].model.startswith("CrostonSBA")
        assert 0 < rows[sku].daily_demand < 0.5
    # Stocked at BLR-1 but never sold there: a no-demand row, no suggestion.
    assert rows["AMOX-500"].status == ReplenishmentStatus.NO_DEMAND
    assert rows["AMOX-500"].suggested_quantity == 0 and rows["AMOX-500"].order_up_to is None


@pytest.fixture
def small_history(demo_catalog):
    days = past_days(70)
    rng = np.random.default_rng(3)
    units = {
        ("PARA-500", "BLR-1"): rng.poisson(5, len(days)),
        ("PARA-500", "DEL-1"): rng.poisson(3, len(days)),
        ("CETI-10", "BLR-1"): rng.poisson(4, len(days)),
    }
    history_write(units, days)
    return units


def test_a_failed_run_leaves_the_previous_results_current(small_history, monkeypatch):
    first = services.forecast_run(skus=["PARA-500", "CETI-10"])
    before = dict(Replenishment.objects.filter(current=True).values_list("pk", "run_id"))
    assert set(before.values()) == {first.pk} and len(before) >= 3

    calls = {"n": 0}
    real_plan = services.plan_series

    def plan_then_fail(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the disk filled up")
        return real_plan(**kwargs)

    monkeypatch.setattr(services, "plan_series", plan_then_fail)
    with pytest.raises(RuntimeError):
        services.forecast_run(skus=["PARA-500", "CETI-10"])

    failed = ForecastRun.objects.order_by("-started_at").first()
    assert failed.status == "failed" and "disk filled up" in failed.error
    after = dict(Replenishment.objects.filter(current=True).values_list("pk", "run_id"))
    assert after == before
    assert not Replenishment.objects.filter(run=failed).exists()


def test_a_run_for_one_centre_replaces_only_that_centres_rows(small_history):
    services.forecast_run(skus=["PARA-500"])
    whole = {r.center.code: r.run_id for r in Replenishment.objects.filter(current=True)}
    assert {"BLR-1", "DEL-1"} <= set(whole)

    again = services.forecast_run(skus=["PARA-500"], centers=["DEL-1"])
    now = {r.center.code: r.run_id for r in Replenishment.objects.filter(current=True)}
    assert now["DEL-1"] == again.pk
    assert now["BLR-1"] == whole["BLR-1"]
    assert again.series == 1


def test_unknown_sku_or_centre_is_refused_and_writes_nothing(demo_catalog):
    with pytest.raises(CommandError, match="unknown SKU: NOPE-1"):
        call_command("forecast_demand", "--sku", "NOPE-1", "--no-progress")
    with pytest.raises(CommandError, match="unknown centre: XXX-9"):
        call_command("forecast_demand", "--center", "XXX-9", "--no-progress")
    assert not ForecastRun.objects.exists()


def test_the_nightly_task_runs_a_forecast(small_history, settings):
    from celery import current_app as app

    from forecasting.tasks import forecast_demand

    entry = app.conf.beat_schedule["forecast-demand"]
    assert entry["task"] == "forecasting.forecast_demand"
    assert entry["options"]["queue"] == "maintenance"
    assert app.amqp.router.route({}, "forecasting.forecast_demand")["queue"].name == "maintenance"

    run_id = forecast_demand.delay().get(timeout=120)
    run = ForecastRun.objects.get(pk=run_id)
    assert run.status == "succeeded" and run.as_of == timezone.localdate()
    assert Replenishment.objects.filter(current=True, run=run).count() == run.series


def test_a_run_still_working_blocks_another(small_history):
    ForecastRun.objects.create(as_of=timezone.localdate(), horizon_days=28)
    with pytest.raises(services.RunInProgress):
        services.forecast_run()
    # Unless it is stale: it died without saying so.
    ForecastRun.objects.update(started_at=timezone.now() - datetime.timedelta(hours=7))
    assert services.forecast_run(skus=["CETI-10"]).status == "succeeded"
