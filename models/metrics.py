"""Forecast error metrics, each defined so that a zero actual cannot blow it up silently."""

from __future__ import annotations

import numpy as np


def _arrays(actual, predicted) -> tuple[np.ndarray, np.ndarray]:
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    if actual.shape != predicted.shape:
        raise ValueError(f"actual {actual.shape} and predicted {predicted.shape} differ in shape")
    return actual, predicted


def mae(actual, predicted) -> float:
    actual, predicted = _arrays(actual, predicted)
    return float(np.mean(np.abs(actual - predicted))) if actual.size else float("nan")


def rmse(actual, predicted) -> float:
    actual, predicted = _arrays(actual, predicted)
    return float(np.sqrt(np.mean((actual - predicted) ** 2))) if actual.size else float("nan")


def wape(actual, predicted) -> float:
    """Sum of absolute errors over sum of absolute actuals; NaN when every actual is zero."""
    actual, predicted = _arrays(actual, predicted)
    total = np.abs(actual).sum()
    return float(np.abs(actual - predicted).sum() / total) if total > 0 else float("nan")


def smape(actual, predicted) -> float:
    """Symmetric MAPE in [0, 2]; a step where both are zero counts as a perfect 0."""
    actual, predicted = _arrays(actual, predicted)
    if not actual.size:
        return float("nan")
    denominator = np.abs(actual) + np.abs(predicted)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(denominator > 0, 2 * np.abs(actual - predicted) / denominator, 0.0)
    return float(terms.mean())


def mape(actual, predicted) -> tuple[float, int]:
    """MAPE over the non-zero actuals, and how many zero actuals it left out."""
    actual, predicted = _arrays(actual, predicted)
    nonzero = actual != 0
    left_out = int((~nonzero).sum())
    if not nonzero.any():
        return float("nan"), left_out
    errors = np.abs((actual[nonzero] - predicted[nonzero]) / actual[nonzero])
    return float(errors.mean()), left_out


def seasonal_naive_mae(train, season: int) -> float:
    """In-sample MAE of the seasonal naive on training values (NaNs skipped); the MASE scale."""
    train = np.asarray(train, dtype=float)
    if train.size <= season:
        return float("nan")
    differences = np.abs(train[season:] - train[:-season])
    differences = differences[~np.isnan(differences)]
    return float(differences.mean()) if differences.size else float("nan")


def mase(actual, predicted, naive_scale: float) -> float:
    """MAE scaled by the seasonal naive's in-sample MAE; NaN when that scale is 0 or unknown."""
    if not np.isfinite(naive_scale) or naive_scale <= 0:
        return float("nan")
    return mae(actual, predicted) / naive_scale


def coverage(actual, lower, upper) -> float:
    """Share of actuals inside [lower, upper]."""
    actual, lower = _arrays(actual, lower)
    upper = np.asarray(upper, dtype=float)
    if not actual.size:
        return float("nan")
    return float(np.mean((actual >= lower) & (actual <= upper)))


def all_metrics(actual, p50, p10=None, p90=None, naive_scale: float = float("nan")) -> dict:
    """Every metric of the CV table for one slice of forecasts."""
    mape_value, zeros_left_out = mape(actual, p50)
    result = {
        "n": int(np.asarray(actual).size),
        "mae": mae(actual, p50),
        "rmse": rmse(actual, p50),
        "wape": wape(actual, p50),
        "smape": smape(actual, p50),
        "mase": mase(actual, p50, naive_scale),
        "mape": mape_value,
        "mape_zeros_left_out": zeros_left_out,
    }
    if p10 is not None and p90 is not None:
        result["coverage_80"] = coverage(actual, p10, p90)
    return result
