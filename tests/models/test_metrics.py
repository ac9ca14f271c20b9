"""Metrics on hand-computed examples, zero actuals included."""

from __future__ import annotations

import math

import pytest

from models import metrics

ACTUAL = [0.0, 2.0, 4.0]
PREDICTED = [1.0, 1.0, 5.0]


def test_errors_on_hand_computed_example():
    assert metrics.mae(ACTUAL, PREDICTED) == pytest.approx(1.0)
    assert metrics.rmse(ACTUAL, PREDICTED) == pytest.approx(1.0)
    assert metrics.wape(ACTUAL, PREDICTED) == pytest.approx(3 / 6)
    # sMAPE terms: 2*1/(0+1), 2*1/(2+1), 2*1/(4+5)
    assert metrics.smape(ACTUAL, PREDICTED) == pytest.approx((2 + 2 / 3 + 2 / 9) / 3)


def test_mape_leaves_out_zero_actuals_and_counts_them():
    value, left_out = metrics.mape(ACTUAL, PREDICTED)
    assert value == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert left_out == 1


def test_wape_and_mape_undefined_when_every_actual_is_zero():
    assert math.isnan(metrics.wape([0, 0], [1, 2]))
    value, left_out = metrics.mape([0, 0], [1, 2])
    assert math.isnan(value) and left_out == 2


def test_smape_counts_both_zero_as_perfect():
    assert metrics.smape([0.0, 2.0], [0.0, 2.0]) == 0.0


def test_mase_scales_by_seasonal_naive_in_sample_error():
    scale = metrics.seasonal_naive_mae([1.0, 2.0, 4.0, 3.0], season=2)
    assert scale == pytest.approx((3 + 1) / 2)
    assert metrics.mase(ACTUAL, PREDICTED, scale) == pytest.approx(0.5)
    assert math.isnan(metrics.mase(ACTUAL, PREDICTED, 0.0))


def test_coverage_counts_actuals_inside_interval():
    assert metrics.coverage(ACTUAL, [0, 0, 5], [1, 3, 6]) == pytest.approx(2 / 3)


def test_all_metrics_reports_left_out_zeros():
    row = metrics.all_metrics(ACTUAL, PREDICTED, [0, 0, 5], [1, 3, 6], naive_scale=2.0)
    assert row["mape_zeros_left_out"] == 1
    assert row["mase"] == pytest.approx(0.5)
    assert row["coverage_80"] == pytest.approx(2 / 3)
