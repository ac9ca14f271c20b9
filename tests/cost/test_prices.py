"""The price table: hand-computed costs of cached, cache-write and mid-month price changes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from pipelines.errors import InputError
from pipelines.prices import load_prices, price_usage, unpriced_models
from pipelines.settings import REPO_ROOT

HEADER = (
    "provider,model,effective_date,input_per_mtok,output_per_mtok,cached_input_per_mtok,"
    "cache_write_per_mtok,currency,source\n"
)


def usage_row(provider, model, day, input_tokens, output_tokens=0, cached=0, cache_write=0):
    return {
        "provider": provider,
        "model": model,
        "day": day,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_input_tokens": cached,
        "cache_write_tokens": cache_write,
    }


def test_repository_price_table_prices_every_model_of_the_replay_log():
    prices = load_prices(REPO_ROOT / "config" / "prices.csv")
    for key in [
        ("anthropic", "claude-sonnet-4.5"),
        ("anthropic", "claude-opus-4"),
        ("openai", "gpt-4.1"),
        ("deepseek", "deepseek-v3.2"),
    ]:
        assert key in prices
    assert all(
        row.source.startswith("https://") for key in prices.models() for row in prices.history(*key)
    )
    deepseek_chat = prices.history("deepseek", "deepseek-chat")
    assert len(deepseek_chat) >= 2 and deepseek_chat[-1].output_per_mtok == 0.42


def test_cached_and_cache_write_tokens_are_each_priced_once_at_their_own_rate():
    prices = load_prices(REPO_ROOT / "config" / "prices.csv")
    day = dt.date(2025, 11, 3)
    usage = pd.DataFrame(
        [
            usage_row("anthropic", "claude-sonnet-4.5", day, 1_000_000, 200_000, 400_000, 100_000),
            usage_row("openai", "gpt-4.1", day, 1_000_000, 200_000, 400_000, 100_000),
        ]
    )

    priced = price_usage(usage, prices)

    # Anthropic: 0.5M uncached x $3 + 0.4M read x $0.30 + 0.1M write x $3.75 + 0.2M out x $15.
    assert priced["cost"].iloc[0] == pytest.approx(1.5 + 0.12 + 0.375 + 3.0)
    # OpenAI has no cache-write price: written tokens cost the input rate ($2), reads $0.50.
    assert priced["cost"].iloc[1] == pytest.approx(1.0 + 0.2 + 0.2 + 1.6)
    assert priced["cost_cache_write"].tolist() == pytest.approx([0.375, 0.2])


def test_a_mid_month_price_change_never_reprices_the_days_before_it(tmp_path: Path):
    path = tmp_path / "prices.csv"
    path.write_text(
        HEADER
        + "acme,m1,2025-03-01,1.00,2.00,,,USD,https://example.test\n"
        + "acme,m1,2025-03-15,2.00,4.00,,,USD,https://example.test\n"
    )
    prices = load_prices(path)
    usage = pd.DataFrame(
        [
            usage_row("acme", "m1", dt.date(2025, 3, 14), 1_000_000, 1_000_000),
            usage_row("acme", "m1", dt.date(2025, 3, 15), 1_000_000, 1_000_000),
        ]
    )

    priced = price_usage(usage, prices)

    assert priced["cost"].tolist() == pytest.approx([3.0, 6.0])
    assert priced["price_effective_date"].tolist() == [dt.date(2025, 3, 1), dt.date(2025, 3, 15)]


def test_an_unknown_model_is_unpriced_by_name_not_costed_at_zero():
    prices = load_prices(REPO_ROOT / "config" / "prices.csv")
    usage = pd.DataFrame(
        [
            usage_row("acme", "secret-model", dt.date(2025, 11, 3), 1000, 10),
            usage_row("openai", "gpt-4.1", dt.date(2025, 11, 3), 1_000_000),
        ]
    )

    priced = price_usage(usage, prices)

    assert pd.isna(priced["cost"].iloc[0])
    assert priced["priced"].tolist() == [False, True]
    assert unpriced_models(priced) == ["acme/secret-model"]


def test_usage_before_a_models_first_listing_uses_that_first_price(tmp_path: Path, caplog):
    prices = load_prices(REPO_ROOT / "config" / "prices.csv")
    usage = pd.DataFrame([usage_row("openai", "gpt-4.1", dt.date(2015, 3, 2), 1_000_000)])

    priced = price_usage(usage, prices)

    assert priced["cost"].iloc[0] == pytest.approx(2.0)
    assert "before its first listed price" in caplog.text


def test_a_bad_price_names_the_file_line_and_field(tmp_path: Path):
    path = tmp_path / "prices.csv"
    path.write_text(
        HEADER + "acme,m1,2025-03-01,1.00,2.00,,,USD,x\nacme,m2,2025-03-01,abc,2,,,USD,x\n"
    )

    with pytest.raises(InputError, match=r"prices.csv:3: field 'input_per_mtok'='abc'"):
        load_prices(path)


def test_a_dated_snapshot_or_a_dotted_name_is_priced_at_its_models_rows(tmp_path: Path, caplog):
    path = tmp_path / "prices.csv"
    path.write_text(
        HEADER
        + "anthropic,claude-sonnet-4-5-20250929,2025-09-29,3.00,15.00,0.30,3.75,USD,x\n"
        + "openai,gpt-4.1,2025-04-14,2.00,8.00,0.50,,USD,x\n"
    )
    prices = load_prices(path)
    day = dt.date(2025, 11, 3)
    usage = pd.DataFrame(
        [
            usage_row("anthropic", "claude-sonnet-4.5", day, 1_000_000, 100_000),
            usage_row("anthropic", "claude-sonnet-4-5", day, 1_000_000, 100_000),
            usage_row("openai", "gpt-4.1-2025-04-14", day, 1_000_000, 100_000),
            usage_row("openai", "gpt-4.10", day, 1_000_000, 100_000),
        ]
    )

    with caplog.at_level("INFO", logger="pipelines.prices"):
        priced = price_usage(usage, prices)

    # Sonnet: 1M in x $3 + 0.1M out x $15 = 4.5; GPT-4.1: 1M x $2 + 0.1M x $8 = 2.8.
    assert priced["cost"].tolist()[:3] == pytest.approx([4.5, 4.5, 2.8])
    # "gpt-4.10" is another version, not a spelling of gpt-4.1: it stays unpriced.
    assert unpriced_models(priced) == ["openai/gpt-4.10"]
    assert "priced at the rows of anthropic/claude-sonnet-4-5-20250929" in caplog.text


def test_a_snapshot_with_its_own_row_keeps_it_and_other_snapshots_use_the_alias(
    tmp_path: Path,
):
    path = tmp_path / "prices.csv"
    path.write_text(
        HEADER
        + "openai,gpt-4o,2024-10-01,2.50,10.00,1.25,,USD,x\n"
        + "openai,gpt-4o-2024-05-13,2024-05-13,5.00,15.00,,,USD,x\n"
    )
    prices = load_prices(path)
    day = dt.date(2025, 1, 6)
    usage = pd.DataFrame(
        [
            usage_row("openai", "gpt-4o-2024-05-13", day, 1_000_000),
            usage_row("openai", "gpt-4o-2024-11-20", day, 1_000_000),
        ]
    )

    priced = price_usage(usage, prices)

    assert priced["cost"].tolist() == pytest.approx([5.0, 2.5])


def test_two_undated_names_sharing_a_key_leave_a_third_spelling_unpriced(tmp_path: Path):
    path = tmp_path / "prices.csv"
    path.write_text(
        HEADER
        + "acme,m-1.5,2025-03-01,1.00,2.00,,,USD,x\n"
        + "acme,m-1-5,2025-03-01,3.00,4.00,,,USD,x\n"
    )
    prices = load_prices(path)

    assert prices.resolve("acme", "m-1.5") == "m-1.5"
    assert prices.resolve("acme", "m-1-5-20250301") is None
    assert ("acme", "m-1-5-20250301") not in prices



def test_repository_table_prices_the_spellings_of_provider_exports():
    prices = load_prices(REPO_ROOT / "config" / "prices.csv")
    day = dt.date(2025, 11, 3)

    # Anthropic's usage report names the dated model id, OpenAI's export the snapshot.
    assert prices.rate_on("anthropic", "claude-sonnet-4-5-20250929", day).input_per_mtok == 3.0
    assert prices.rate_on("anthropic", "claude-opus-4-20250514", day).output_per_mtok == 75.0
    assert prices.rate_on("openai", "gpt-4.1-2025-04-14", day).cached_input_per_mtok == 0.5
    # Versioned rows: o3 was cut from $10/$40 to $2/$8 on 2025-06-10.
    assert prices.rate_on("openai", "o3", dt.date(2025, 6, 9)).input_per_mtok == 10.0
    assert prices.rate_on("openai", "o3-2025-04-16", dt.date(2025, 6, 10)).input_per_mtok == 2.0
    # DeepSeek's V3.1 prices began 2025-09-05 16:00 UTC; the first whole day is 09-06.
    assert prices.rate_on("deepseek", "deepseek-chat", dt.date(2025, 9, 5)).input_per_mtok == 0.27
    assert prices.rate_on("deepseek", "deepseek-chat", dt.date(2025, 9, 6)).input_per_mtok == 0.56
