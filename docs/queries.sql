-- Example queries a FinOps user runs on the usagecast reporting database.
-- Each runs unchanged on the embedded SQLite file and on PostgreSQL;
-- tests/reporting/test_reporting.py runs every one of them on both.

-- name: month_estimate_total
-- This month's and next month's bill: actual to date, and the estimate with its p10-p90 interval.
SELECT month, actual_cost_to_date, estimate_p10, estimate_p50, estimate_p90, currency,
       unpriced_models
FROM latest_cost_estimate
WHERE level = 'total'
ORDER BY month;

-- name: month_estimate_by_team
-- The same per team, next to the team's budget and the chance of going over it.
SELECT month, name AS team, actual_cost_to_date, estimate_p10, estimate_p50, estimate_p90,
       budget, prob_over_budget
FROM latest_cost_estimate
WHERE level = 'team'
ORDER BY month, estimate_p50 DESC;

-- name: teams_likely_over_budget
-- Teams with at least a 20% chance of exceeding their budget, riskiest first.
SELECT month, name AS team, budget, estimate_p50, estimate_p90, prob_over_budget
FROM latest_cost_estimate
WHERE level = 'team' AND budget IS NOT NULL AND prob_over_budget >= 0.2
ORDER BY prob_over_budget DESC, month;

-- name: top_series_next_month
-- The five series expected to cost the most next month.
SELECT series_id, team, estimate_p10, estimate_p50, estimate_p90
FROM latest_cost_estimate
WHERE level = 'series' AND month_index = 1 AND estimate_p50 IS NOT NULL
ORDER BY estimate_p50 DESC
LIMIT 5;

-- name: cheaper_alternatives
-- What this month's usage would cost on each configured alternative model, savings first.
SELECT series_id, current_model, alternative_model, current_cost, alternative_cost, difference
FROM cost_whatif_monthly
WHERE as_of_date = (SELECT MAX(as_of_date) FROM cost_whatif_monthly)
  AND month_index = 0 AND difference IS NOT NULL
ORDER BY difference, series_id;

-- name: requests_next_7_days
-- Calls expected per series over the next seven days (capacity), with the interval.
SELECT series_id, SUM(p10) AS requests_p10, SUM(p50) AS requests_p50, SUM(p90) AS requests_p90
FROM latest_forecast_daily
WHERE target = 'requests'
  AND day IN (SELECT DISTINCT day FROM latest_forecast_daily ORDER BY day LIMIT 7)
GROUP BY series_id
ORDER BY requests_p50 DESC;

-- name: actual_spend_by_model_this_month
-- Actual spend per provider and model since the start of the current month (UTC days).
SELECT provider, model, SUM(cost) AS cost, SUM(requests) AS requests,
       SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens
FROM usage_daily
WHERE day >= (SELECT MIN(month) FROM latest_cost_estimate)
GROUP BY provider, model
ORDER BY cost DESC;

-- name: forecast_accuracy_by_series
-- How good past daily forecasts were: WAPE and how often the actual fell inside p10-p90.
SELECT series_id, target, COUNT(*) AS days,
       SUM(abs_error) / NULLIF(SUM(actual), 0) AS wape,
       AVG(CASE WHEN inside_interval THEN 1.0 ELSE 0.0 END) AS interval_coverage
FROM forecast_accuracy
GROUP BY series_id, target
ORDER BY series_id, target;

-- name: recent_runs
-- The last forecast runs: which model version, which data, how many rows.
SELECT as_of_date, model_version, data_start, data_end, series_count, forecast_daily_rows,
       unpriced_models
FROM pipeline_runs
ORDER BY as_of_date DESC
LIMIT 10;
