"""Which model a series gets (the Syntetos-Boylan rule) and what the engine returns."""

from __future__ import annotations

import numpy as np

from forecasting.engine import (
    MIN_HISTORY_DAYS,
    classify,
    forecast_many,
    seasonal_naive_mae,
    since_first_sale,
)
from forecasting.enums import DemandPattern


def test_the_pattern_follows_adi_and_cv2():
    steady_every_day = np.full(70, 5.0)
    varying_every_day = np.tile([1.0, 9.0, 2.0, 12.0, 1.0, 1.0, 20.0], 10)
    steady_sometimes = np.tile([0, 0, 3.0, 0, 0, 3.0, 0], 10)
    varying_sometimes = np.tile([0, 0, 1.0, 0, 0, 15.0, 0], 10)
    assert classify(steady_every_day).pattern == DemandPattern.SMOOTH
    assert classify(varying_every_day).pattern == DemandPattern.ERRATIC
    assert classify(steady_sometimes).pattern == DemandPattern.INTERMITTENT
    assert classify(varying_sometimes).pattern == DemandPattern.LUMPY
    c = classify(steady_sometimes)
    assert c.adi == 3.5 and c.cv2 == 0.0


def test_short_and_empty_series():
    assert classify(np.full(MIN_HISTORY_DAYS - 1, 4.0)).pattern == DemandPattern.SHORT
    assert classify(np.zeros(0)).pattern == DemandPattern.NONE
    # A series starts at its first sale: the zeros before it are not slow demand.
    assert since_first_sale(np.array([0, 0, 0, 2.0, 0, 1.0])).tolist() == [2.0, 0, 1.0]


def test_seasonal_naive_repeats_last_week():
    week = [1.0, 2, 3, 4, 5, 6, 7]
    y = np.array(week * 3)
    assert seasonal_naive_mae(y, [14], 7) == 0.0
    y[14] = 11
    assert seasonal_naive_mae(y, [14], 7) == 10 / 7


def test_each_pattern_gets_its_model_and_intervals_in_order():
    rng = np.random.default_rng(5)
    days = np.arange(120)
    series = {
        1: rng.poisson(8 + 4 * np.sin(2 * np.pi * days / 7)).astype(float),
        2: rng.poisson(0.15, 120).astype(float),
        3: rng.poisson(6, 30).astype(float),
        4: np.zeros(0),
    }
    series[2][0] = 1  # it has sold, once at least
    results = forecast_many(series, horizon=28)
    assert results[1].model.startswith("AutoETS") and results[1].mase is not None
    assert results[2].model.startswith("CrostonSBA")
    assert results[3].pattern == DemandPattern.SHORT and results[3].mase is None
    assert results[4].pattern == DemandPattern.NONE and results[4].mean == []
    for key in (1, 2, 3):
        r = results[key]
        assert len(r.mean) == 28
        for day in range(28):
            assert 0 <= r.lo95[day] <= r.lo80[day] <= r.mean[day] <= r.hi80[day] <= r.hi95[day]
