"""What a forecast means for a centre's stock: sellable units, days of cover, the
order-up-to level and what to order, units at risk of passing the shelf-life floor, and
where they would sell in time. Plain values in, plain values out (docs/FORECASTING.md,
"Reading the replenishment page", has the formulas)."""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

from forecasting.enums import INTERMITTENT_PATTERNS, DemandPattern, ReplenishmentStatus

# No-demand rows sort after every row with demand, however well covered.
NO_DEMAND_URGENCY = 1e9
Z95 = NormalDist().inv_cdf(0.975)


@dataclass(frozen=True)
class BatchStock:
    batch: str
    expires_on: datetime.date
    on_hand: int
    reserved: int

    @property
    def free(self) -> int:
        return max(self.on_hand - self.reserved, 0)


@dataclass(frozen=True)
class Policy:
    lead_time_days: int
    review_period_days: int
    service_level: float
    floor_days: int


@dataclass
class AtRisk:
    batch: str
    expires_on: datetime.date
    units: int
    # The last day the batch may be sold (expiry less the shelf-life floor).
    last_sale_day: datetime.date


@dataclass
class Plan:
    status: ReplenishmentStatus
    on_hand: int
    reserved: int
    expiring_units: int
    at_risk_units: int
    sellable_units: int
    daily_demand: float
    days_of_cover: float | None
    order_up_to: int | None
    suggested_quantity: int
    urgency: float
    at_risk: list[AtRisk] = field(default_factory=list)
    transfers: list[dict[str, object]] = field(default_factory=list)


def last_sale_day(batch: BatchStock, floor_days: int) -> datetime.date:
    return batch.expires_on - datetime.timedelta(days=floor_days)


def simulate_fefo(
    batches: Sequence[BatchStock], mean: Sequence[float], *, as_of: datetime.date, floor_days: int
) -> list[AtRisk]:
    """Sell the forecast mean day by day, earliest expiry first, from batches still
    sellable that day; what a batch has left after its last sale day is at risk. A batch
    already past the floor is at risk whole."""
    left = {b.batch: float(b.free) for b in batches}
    ordered = sorted(batches, key=lambda b: (b.expires_on, b.batch))
    horizon_end = as_of + datetime.timedelta(days=len(mean))
    for offset, demand in enumerate(mean):
        day = as_of + datetime.timedelta(days=offset)
        for b in ordered:
            if demand <= 0:
                break
            if last_sale_day(b, floor_days) < day or left[b.batch] <= 0:
                continue
            take = min(demand, left[b.batch])
            left[b.batch] -= take
            demand -= take
    return [
        AtRisk(b.batch, b.expires_on, math.ceil(left[b.batch] - 1e-9), last_sale_day(b, floor_days))
        for b in ordered
        if last_sale_day(b, floor_days) < horizon_end and left[b.batch] > 1e-9
    ]


def _spread_over(
    days: int, pattern: DemandPattern, mean: Sequence[float], hi95: Sequence[float], std: float
) -> float:
    """Standard deviation of demand summed over `days`. Regular series: per-day spreads
    read off the 95 % interval (half-width / 1.96), added in quadrature, the last day's
    repeated past the horizon. Intermittent and short series: the history's daily
    standard deviation, times √days."""
    if pattern in INTERMITTENT_PATTERNS or pattern == DemandPattern.SHORT or not hi95:
        return std * math.sqrt(days)
    sigmas = [max(h - m, 0.0) / Z95 for m, h in zip(mean, hi95, strict=True)]
    sigmas += [sigmas[-1]] * max(days - len(sigmas), 0)
    return math.sqrt(sum(s * s for s in sigmas[:days]))


def plan_series(
    *,
    as_of: datetime.date,
    batches: Sequence[BatchStock],
    pattern: DemandPattern,
    mean: Sequence[float],
    hi95: Sequence[float],
    history_std: float,
    horizon: int,
    policy: Policy,
) -> Plan:
    on_hand = sum(b.on_hand for b in batches)
    reserved = sum(b.reserved for b in batches)
    horizon_end = as_of + datetime.timedelta(days=horizon)
    expiring = sum(b.free for b in batches if last_sale_day(b, policy.floor_days) < horizon_end)
    free = sum(b.free for b in batches)
    daily = float(sum(mean) / len(mean)) if mean else 0.0
    if pattern == DemandPattern.NONE or daily <= 0:
        at_risk = simulate_fefo(batches, [0.0] * horizon, as_of=as_of, floor_days=policy.floor_days)
        units_at_risk = sum(r.units for r in at_risk)
        return Plan(
            status=ReplenishmentStatus.NO_DEMAND,
            on_hand=on_hand,
            reserved=reserved,
            expiring_units=expiring,
            at_risk_units=units_at_risk,
            sellable_units=max(free - units_at_risk, 0),
            daily_demand=0.0,
            days_of_cover=None,
            order_up_to=None,
            suggested_quantity=0,
            urgency=NO_DEMAND_URGENCY,
            at_risk=at_risk,
        )
    at_risk = simulate_fefo(batches, mean, as_of=as_of, floor_days=policy.floor_days)
    units_at_risk = sum(r.units for r in at_risk)
    sellable = max(free - units_at_risk, 0)
    cover = sellable / daily
    # Order-up-to: demand over lead time + review period at the service level.
    days = policy.lead_time_days + policy.review_period_days
    expected = sum(mean[:days]) + daily * max(days - len(mean), 0)
    spread = _spread_over(days, pattern, mean, hi95, history_std)
    z = NormalDist().inv_cdf(policy.service_level)
    order_up_to = math.ceil(expected + z * spread)
    suggested = max(order_up_to - sellable, 0)
    if cover < policy.lead_time_days:
        status = ReplenishmentStatus.STOCKOUT_RISK
    elif suggested > 0:
        status = ReplenishmentStatus.REORDER
    else:
        status = ReplenishmentStatus.OK
    return Plan(
        status=status,
        on_hand=on_hand,
        reserved=reserved,
        expiring_units=expiring,
        at_risk_units=units_at_risk,
        sellable_units=sellable,
        daily_demand=round(daily, 3),
        days_of_cover=round(cover, 1),
        order_up_to=order_up_to,
        suggested_quantity=suggested,
        urgency=round(cover - policy.lead_time_days, 3),
        at_risk=at_risk,
    )


@dataclass
class Outlet:
    """Another centre that could take at-risk units: its forecast and its own free stock
    by last sale day (which FEFO sells before a transferred batch or after it)."""

    center: str
    mean: Sequence[float]
    batches: Sequence[BatchStock]
    taken: int = 0


def transfers_for(
    at_risk: Sequence[AtRisk],
    outlets: Sequence[Outlet],
    *,
    as_of: datetime.date,
    floor_days: int,
) -> list[dict[str, object]]:
    """Send at-risk units where the forecast sells them before their last sale day: a
    centre can take what it is forecast to sell by then, less its own units that sell
    first (those expiring no later) and less what it was already sent. Largest room
    first; batches already past the floor go nowhere."""
    moves: list[dict[str, object]] = []
    for risk in sorted(at_risk, key=lambda r: r.expires_on):
        days = (risk.last_sale_day - as_of).days + 1
        if days <= 0:
            continue
        units = risk.units
        while units > 0:
            best, room = None, 0
            for outlet in outlets:
                demand = sum(outlet.mean[:days]) + (
                    (sum(outlet.mean) / len(outlet.mean)) * max(days - len(outlet.mean), 0)
                    if outlet.mean
                    else 0.0
                )
                earlier = sum(
                    b.free
                    for b in outlet.batches
                    if b.expires_on <= risk.expires_on and last_sale_day(b, floor_days) >= as_of
                )
                free_room = math.floor(demand - earlier - outlet.taken)
                if free_room > room:
                    best, room = outlet, free_room
            if best is None:
                break
            quantity = min(units, room)
            best.taken += quantity
            units -= quantity
            moves.append(
                {
                    "batch": risk.batch,
                    "expires_on": risk.expires_on.isoformat(),
                    "quantity": quantity,
                    "to_center": best.center,
                }
            )
    return moves
