"""Replenishment arithmetic on plain values: sellable stock, at-risk units, cover, the
order-up-to level and transfers."""

from __future__ import annotations

import datetime
import math
from statistics import NormalDist

from forecasting.enums import DemandPattern, ReplenishmentStatus
from forecasting.replenishment import (
    NO_DEMAND_URGENCY,
    BatchStock,
    Outlet,
    Policy,
    plan_series,
    simulate_fefo,
    transfers_for,
)

TODAY = datetime.date(2026, 3, 1)
POLICY = Policy(lead_time_days=7, review_period_days=7, service_level=0.95, floor_days=30)


def days(n: int) -> datetime.date:
    return TODAY + datetime.timedelta(days=n)


def test_a_batch_passing_the_floor_before_it_sells_puts_its_rest_at_risk():
    near = BatchStock("NEAR", days(30 + 10), on_hand=100, reserved=0)  # sellable 10 more days
    far = BatchStock("FAR", days(400), on_hand=50, reserved=10)
    at_risk = simulate_fefo([far, near], [5.0] * 28, as_of=TODAY, floor_days=30)
    # Days 0..10 sell 5 a day from NEAR (earliest expiry first): 55 sold, 45 left at risk.
    assert [(r.batch, r.units) for r in at_risk] == [("NEAR", 45)]

    plan = plan_series(
        as_of=TODAY,
        batches=[near, far],
        pattern=DemandPattern.SMOOTH,
        mean=[5.0] * 28,
        hi95=[5.0 + 1.96 * 2] * 28,
        history_std=2.0,
        horizon=28,
        policy=POLICY,
    )
    assert (plan.on_hand, plan.reserved, plan.expiring_units) == (150, 10, 100)
    assert plan.at_risk_units == 45
    assert plan.sellable_units == 150 - 10 - 45
    assert plan.days_of_cover == round(95 / 5, 1)
    # 14 days at 5 a day, spread 2 a day added in quadrature over 14 days, at z(0.95).
    expected = math.ceil(70 + NormalDist().inv_cdf(0.95) * math.sqrt(14 * 4))
    assert plan.order_up_to == expected
    assert plan.suggested_quantity == max(expected - 95, 0)
    assert plan.status == ReplenishmentStatus.OK
    assert plan.urgency == (19 - 7)


def test_cover_below_lead_time_is_a_stockout_risk():
    plan = plan_series(
        as_of=TODAY,
        batches=[BatchStock("B", days(400), on_hand=20, reserved=0)],
        pattern=DemandPattern.SMOOTH,
        mean=[10.0] * 28,
        hi95=[14.0] * 28,
        history_std=2.0,
        horizon=28,
        policy=POLICY,
    )
    assert plan.days_of_cover == 2.0 and plan.status == ReplenishmentStatus.STOCKOUT_RISK
    assert plan.suggested_quantity > 120
    assert plan.urgency == -5.0


def test_no_demand_gets_no_suggestion_but_still_shows_expiring_stock():
    plan = plan_series(
        as_of=TODAY,
        batches=[BatchStock("OLD", days(35), on_hand=12, reserved=0)],
        pattern=DemandPattern.NONE,
        mean=[],
        hi95=[],
        history_std=0.0,
        horizon=28,
        policy=POLICY,
    )
    assert plan.status == ReplenishmentStatus.NO_DEMAND
    assert (plan.order_up_to, plan.suggested_quantity, plan.days_of_cover) == (None, 0, None)
    assert plan.at_risk_units == 12 and plan.sellable_units == 0
    assert plan.urgency == NO_DEMAND_URGENCY


def test_intermittent_series_use_the_history_spread():
    plan = plan_series(
        as_of=TODAY,
        batches=[],
        pattern=DemandPattern.INTERMITTENT,
        mean=[0.2] * 28,
        hi95=[0.4] * 28,
        history_std=0.5,
        horizon=28,
        policy=POLICY,
    )
    assert plan.order_up_to == math.ceil(0.2 * 14 + NormalDist().inv_cdf(0.95) * 0.5 * 14**0.5)


def test_at_risk_units_go_where_the_forecast_sells_them_in_time():
    near = BatchStock("NEAR", days(30 + 10), on_hand=100, reserved=0)
    at_risk = simulate_fefo([near], [1.0] * 28, as_of=TODAY, floor_days=30)
    assert at_risk[0].units == 89
    busy = Outlet(center="DEL", mean=[6.0] * 28, batches=[])
    # Sells 3 a day but holds 20 units expiring earlier: room for 33 - 20 = 13 by day 10.
    some = Outlet(center="MUM", mean=[3.0] * 28, batches=[BatchStock("M", days(30 + 5), 20, 0)])
    idle = Outlet(center="PUN", mean=[0.0] * 28, batches=[])
    moves = transfers_for(at_risk, [idle, some, busy], as_of=TODAY, floor_days=30)
    assert [(m["to_center"], m["quantity"]) for m in moves] == [("DEL", 66), ("MUM", 13)]
    # A batch already past the floor cannot be sold anywhere: no transfer.
    gone = simulate_fefo([BatchStock("X", days(10), 5, 0)], [1.0] * 28, as_of=TODAY, floor_days=30)
    assert transfers_for(gone, [busy], as_of=TODAY, floor_days=30) == []
