"""Prophet per unit: on daily totals for the long horizon, on the recent hours for the short.

Seasonalities are switched on only when the history can support them (daily for
hourly data, weekly from two weeks, yearly from two years); holidays come from the
``holidays`` package for the configured countries. A constant (or all-zero) unit is
forecast as that constant without fitting, and every forecast is clamped at zero.

Hourly fits use only the last ``HOURLY_WINDOW_DAYS`` days (the short horizon needs
the recent level and shape, and it keeps a fit under a second); their interval is
the fit's own 10%/90% residual quantiles around ``yhat``, which costs no sampling.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from features.calendar import holiday_frame
from features.history import UnitSeries

logger = logging.getLogger(__name__)

INTERVAL_WIDTH = 0.8
HOURLY_WINDOW_DAYS = 28


def forecast_unit(
    unit: UnitSeries, horizon: int, countries: tuple[str, ...], config: dict | None = None
) -> pd.DataFrame:
    """``horizon`` forecasts (days or hours, as the unit) from the end of its history."""
    config = config or {}
    if unit.freq == "h":
        return _forecast_hourly(unit, horizon, countries, config)
    days = pd.date_range(unit.end, periods=horizon, freq="D")
    observed = ~np.isnan(unit.values)
    values = unit.values[observed]
    if values.size == 0 or np.all(values == values[0]) or values.size < 3:
        level = float(values[-1]) if values.size else 0.0
        if values.size and not np.all(values == values[0]):
            level = float(values.mean())
        return _frame(unit, days, np.full(horizon, level), np.full(horizon, level),
                      np.full(horizon, level))

    from prophet import Prophet

    history = pd.DataFrame(
        {"ds": pd.date_range(unit.start, periods=len(unit.values), freq="D")[observed],
         "y": values}
    )
    span_days = (history["ds"].iloc[-1] - history["ds"].iloc[0]).days + 1
    holidays = holiday_frame(countries, history["ds"].dt.year.min(), days[-1].year)
    model = Prophet(
        weekly_seasonality=span_days >= 14,
        yearly_seasonality=span_days >= 730,
        daily_seasonality=False,
        holidays=holidays if not holidays.empty else None,
        interval_width=INTERVAL_WIDTH,
        uncertainty_samples=config.get("uncertainty_samples", 200),
        changepoint_prior_scale=config.get("changepoint_prior_scale", 0.05),
        seasonality_mode=config.get("seasonality_mode", "additive"),
    )
    model.fit(history)
    future = pd.DataFrame({"ds": days})
    # Prophet samples its interval from numpy's global generator: seed it so that a
    # rerun on the same history gives the same interval.
    np.random.seed(config.get("seed", 0))
    predicted = model.predict(future)
    return _frame(
        unit, days, predicted["yhat_lower"].to_numpy(), predicted["yhat"].to_numpy(),
        predicted["yhat_upper"].to_numpy(),
    )


def _forecast_hourly(
    unit: UnitSeries, horizon: int, countries: tuple[str, ...], config: dict
) -> pd.DataFrame:
    hours = pd.date_range(unit.end, periods=horizon, freq="h")
    window = config.get("hourly_window_days", HOURLY_WINDOW_DAYS) * 24
    times = pd.date_range(unit.start, periods=len(unit.values), freq="h")[-window:]
    recent = unit.values[-window:]
    observed = ~np.isnan(recent)
    values = recent[observed]
    if values.size < 48 or np.all(values == values[0]):
        level = float(values.mean()) if values.size else 0.0
        flat = np.full(horizon, level)
        return _frame(unit, hours, flat, flat, flat)

    from prophet import Prophet

    history = pd.DataFrame({"ds": times[observed], "y": values})
    holidays = holiday_frame(countries, history["ds"].dt.year.min(), hours[-1].year)
    model = Prophet(
        daily_seasonality=True,
        weekly_seasonality=len(values) >= 14 * 24,
        yearly_seasonality=False,
        holidays=holidays if not holidays.empty else None,
        uncertainty_samples=0,
        changepoint_prior_scale=config.get("changepoint_prior_scale", 0.05),
    )
    model.fit(history)
    fitted = model.predict(history[["ds"]])["yhat"].to_numpy()
    low, high = np.quantile(values - fitted, [0.1, 0.9])
    predicted = model.predict(pd.DataFrame({"ds": hours}))["yhat"].to_numpy()
    return _frame(unit, hours, predicted + low, predicted, predicted + high)


def _frame(unit, days, low, mid, high) -> pd.DataFrame:
    quantiles = np.sort(np.clip(np.column_stack([low, mid, high]), 0, None), axis=1)
    return pd.DataFrame(
        {
            "series_id": unit.series_id,
            "target": unit.target,
            "h": np.arange(1, len(days) + 1),
            "ds": days,
            "p10": quantiles[:, 0],
            "p50": quantiles[:, 1],
            "p90": quantiles[:, 2],
        }
    )


def forecast(
    units: list[UnitSeries], horizon: int, countries: tuple[str, ...], config: dict | None = None
) -> pd.DataFrame:
    frames = [forecast_unit(unit, horizon, countries, config) for unit in units]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
