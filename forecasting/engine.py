"""The forecasting models: which one a series gets, the forecast with its intervals, and
the rolling-origin backtest against a seasonal naive forecast. Plain arrays in, plain
values out; nothing here touches the database.

Model choice per series (docs/FORECASTING.md, "How a series gets its model"):
- under MIN_HISTORY_DAYS since its first sale: `short`, a historic average (its normal
  intervals are honest about how little is known);
- otherwise the Syntetos-Boylan classification of the series since its first sale:
  ADI (average days between sales) < 1.32 is regular, else intermittent; CV² (squared
  coefficient of variation of the sizes of sales) < 0.49 is steady, else varying.
  Regular series (smooth, erratic) get AutoETS with a weekly season; intermittent ones
  (intermittent, lumpy) get Croston with the Syntetos-Boylan bias correction, whose
  intervals are conformal (Croston has no likelihood, hence no native intervals).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from forecasting.enums import INTERMITTENT_PATTERNS, REGULAR_PATTERNS, DemandPattern

SEASON = 7
LEVELS = (80, 95)
ADI_CUTOFF = 1.32
CV2_CUTOFF = 0.49
# About two months: the weekly season seen eight times, the backtest's four weeks held out
# with four more to fit on, and more than the two 28-day windows conformal intervals need.
MIN_HISTORY_DAYS = 60
# The backtest: BACKTEST_ORIGINS forecasts of BACKTEST_HORIZON days each, from origins a
# week apart over the last weeks of history.
BACKTEST_HORIZON = 7
BACKTEST_ORIGINS = 4


@dataclass(frozen=True)
class Classification:
    pattern: DemandPattern
    adi: float | None
    cv2: float | None


@dataclass(frozen=True)
class SeriesForecast:
    pattern: DemandPattern
    model: str
    adi: float | None
    cv2: float | None
    history_days: int
    mean: list[float]
    lo80: list[float]
    hi80: list[float]
    lo95: list[float]
    hi95: list[float]
    mase: float | None
    # Standard deviation of daily demand over the history: the spread of an intermittent
    # series' lead-time demand (its per-day intervals say little about a sum of days).
    history_std: float = 0.0


def since_first_sale(y: np.ndarray) -> np.ndarray:
    """The series from its first day with a sale (before it, the SKU was not sold there)."""
    nonzero = np.flatnonzero(y > 0)
    return y[nonzero[0] :] if nonzero.size else y[:0]


def classify(y: np.ndarray) -> Classification:
    """The pattern of a series that starts at its first sale."""
    sales = y[y > 0]
    if sales.size == 0:
        return Classification(DemandPattern.NONE, None, None)
    adi = float(y.size / sales.size)
    cv2 = float((sales.std() / sales.mean()) ** 2)
    if y.size < MIN_HISTORY_DAYS:
        return Classification(DemandPattern.SHORT, adi, cv2)
    if adi < ADI_CUTOFF:
        pattern = DemandPattern.SMOOTH if cv2 < CV2_CUTOFF else DemandPattern.ERRATIC
    else:
        pattern = DemandPattern.INTERMITTENT if cv2 < CV2_CUTOFF else DemandPattern.LUMPY
    return Classification(pattern, adi, cv2)


def _model_for(pattern: DemandPattern, horizon: int) -> Any:
    from statsforecast.models import AutoETS, CrostonSBA, HistoricAverage
    from statsforecast.utils import ConformalIntervals

    if pattern in REGULAR_PATTERNS:
        # Error additive or multiplicative (chosen by AICc), no trend, additive weekly
        # season: the full search with trends costs about five times as much per series
        # and a level re-estimated nightly follows a slow trend over four weeks.
        return AutoETS(season_length=SEASON, model="ZNA")
    if pattern in INTERMITTENT_PATTERNS:
        return CrostonSBA(prediction_intervals=ConformalIntervals(h=horizon, n_windows=2))
    return HistoricAverage()


def model_name(pattern: DemandPattern) -> str:
    return {
        **dict.fromkeys(REGULAR_PATTERNS, "AutoETS(ZNA, season 7)"),
        **dict.fromkeys(INTERMITTENT_PATTERNS, "CrostonSBA + conformal"),
        DemandPattern.SHORT: "HistoricAverage",
    }.get(pattern, "")


def _frame(series: dict[int, np.ndarray]) -> Any:
    import pandas as pd

    ids = np.concatenate([np.full(y.size, key) for key, y in series.items()])
    ds = np.concatenate([np.arange(y.size) for y in series.values()])
    values = np.concatenate(list(series.values())).astype(float)
    return pd.DataFrame({"unique_id": ids, "ds": ds, "y": values})


def seasonal_naive_mae(y: np.ndarray, origins: Iterable[int], horizon: int) -> float:
    """Mean absolute error of repeating the last week before each origin."""
    errors = []
    for origin in origins:
        last_week = y[origin - SEASON : origin]
        for step in range(horizon):
            errors.append(abs(y[origin + step] - last_week[step % SEASON]))
    return float(np.mean(errors))


def _backtest(pattern: DemandPattern, series: dict[int, np.ndarray]) -> dict[int, float | None]:
    """MASE per series: the model's mean absolute error over the rolling origins, divided
    by the seasonal naive forecast's over the same days. None where the naive forecast is
    perfect (a series of zeros there) or the history too short."""
    from statsforecast import StatsForecast

    eligible = {k: y for k, y in series.items() if y.size >= MIN_HISTORY_DAYS}
    result: dict[int, float | None] = dict.fromkeys(series)
    if not eligible or pattern not in REGULAR_PATTERNS | INTERMITTENT_PATTERNS:
        return result
    model = _model_for(pattern, BACKTEST_HORIZON)
    sf = StatsForecast(models=[model], freq=1, n_jobs=settings.COT_FORECAST_JOBS)
    # ETS is fitted once, at the first origin, and rolled forward (the costly part is the
    # fit); Croston is cheap enough to refit at every origin (it has no forward step).
    cv = sf.cross_validation(
        df=_frame(eligible),
        h=BACKTEST_HORIZON,
        n_windows=BACKTEST_ORIGINS,
        step_size=BACKTEST_HORIZON,
        refit=pattern not in REGULAR_PATTERNS,
    )
    column = next(c for c in cv.columns if c not in ("unique_id", "ds", "cutoff", "y"))
    errors = (cv[column].clip(lower=0) - cv["y"]).abs().groupby(cv["unique_id"]).mean()
    for key, y in eligible.items():
        origins = [y.size - BACKTEST_HORIZON * (i + 1) for i in range(BACKTEST_ORIGINS)]
        naive = seasonal_naive_mae(y, origins, BACKTEST_HORIZON)
        result[key] = float(errors[key] / naive) if naive > 0 and key in errors else None
    return result


def forecast_many(series: dict[int, np.ndarray], *, horizon: int) -> dict[int, SeriesForecast]:
    """Forecast each series (keyed by any int, each from its first sale; a series of only
    zeros gets pattern `none` and no forecast), grouped by model so each model is fitted
    for many series in one call."""
    from statsforecast import StatsForecast

    classes = {key: classify(y) for key, y in series.items()}
    groups: dict[DemandPattern, dict[int, np.ndarray]] = {}
    for key, c in classes.items():
        groups.setdefault(c.pattern, {})[key] = series[key]
    results: dict[int, SeriesForecast] = {}
    for pattern, members in groups.items():
        if pattern == DemandPattern.NONE:
            for key in members:
                results[key] = SeriesForecast(pattern, "", None, None, 0, [], [], [], [], [], None)
            continue
        sf = StatsForecast(
            models=[_model_for(pattern, horizon)], freq=1, n_jobs=settings.COT_FORECAST_JOBS
        )
        frame = sf.forecast(df=_frame(members), h=horizon, level=list(LEVELS))
        name = next(c for c in frame.columns if c not in ("unique_id", "ds") and "-" not in c)
        mase = _backtest(pattern, members)
        for key, rows in frame.groupby("unique_id", sort=False):

            def column(suffix: str, rows: Any = rows, name: str = name) -> list[float]:
                values = rows[f"{name}{suffix}"].to_numpy(dtype=float)
                # Demand is never negative: neither is its forecast or a lower bound.
                return [round(max(float(v), 0.0), 3) for v in values]

            c = classes[key]
            results[int(key)] = SeriesForecast(
                pattern=pattern,
                model=model_name(pattern),
                adi=c.adi,
                cv2=c.cv2,
                history_days=int(members[key].size),
                mean=column(""),
                lo80=column("-lo-80"),
                hi80=column("-hi-80"),
                lo95=column("-lo-95"),
                hi95=column("-hi-95"),
                mase=None if mase[key] is None or not math.isfinite(mase[key]) else mase[key],
                history_std=float(np.std(members[key])),
            )
    return results
