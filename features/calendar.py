"""Calendar and public-holiday features of the time being forecast (never of the data)."""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)


@lru_cache(maxsize=64)
def holiday_dates(countries: tuple[str, ...], first_year: int, last_year: int) -> frozenset:
    """Public holidays of the configured countries, from the ``holidays`` package."""
    import holidays

    dates: set = set()
    for country in countries:
        try:
            calendar = holidays.country_holidays(country, years=range(first_year, last_year + 1))
        except NotImplementedError:
            logger.warning("no holiday calendar for country %r; leaving it out", country)
            continue
        dates.update(calendar.keys())
    return frozenset(dates)


def holiday_frame(countries: tuple[str, ...], first_year: int, last_year: int) -> pd.DataFrame:
    """The holidays as Prophet wants them: columns ``holiday`` and ``ds``."""
    import holidays

    rows = []
    for country in countries:
        try:
            calendar = holidays.country_holidays(country, years=range(first_year, last_year + 1))
        except NotImplementedError:
            continue
        rows.extend({"holiday": f"{country}:{name}", "ds": pd.Timestamp(day)}
                    for day, name in calendar.items())
    return pd.DataFrame(rows, columns=["holiday", "ds"])


def calendar_features(
    times: pd.DatetimeIndex | np.ndarray, resolution: str, countries: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Hour, weekday, weekend, day of month, month and holiday flag of each time."""
    times = pd.DatetimeIndex(times)
    features = {
        "weekday": times.day_of_week.to_numpy(),
        "weekend": (times.day_of_week >= 5).astype(np.int8),
        "day_of_month": times.day.to_numpy(),
        "month": times.month.to_numpy(),
    }
    if resolution == "hour":
        features["hour"] = times.hour.to_numpy()
    if len(times):
        dates = holiday_dates(tuple(countries), int(times.year.min()), int(times.year.max()))
        features["holiday"] = _holiday_flags(times.normalize(), dates)
    else:
        features["holiday"] = np.zeros(0, dtype=np.int8)
    return features


def _holiday_flags(days: pd.DatetimeIndex, dates: frozenset) -> np.ndarray:
    unique_days, inverse = np.unique(days.to_numpy(), return_inverse=True)
    flags = np.array(
        [pd.Timestamp(day).date() in dates for day in unique_days], dtype=np.int8
    )
    return flags[inverse]
