"""The versioned price table and the one function that turns token counts into money.

``config/prices.csv`` holds one row per provider, model and effective date, in
currency units per million tokens. A day's usage is priced at the row in effect
that day (the latest ``effective_date`` on or before it), so a price change in
the middle of a month never re-prices the days before it.

Token counts follow the lake's normalisation (see ``pipelines.schema``): input
tokens include cache reads and cache writes, so each call's prompt is split into
three parts, each priced once at its own rate:

- uncached input = input - cached - cache_write, at ``input_per_mtok``;
- cache reads at ``cached_input_per_mtok`` (blank: the provider gives no cache
  discount, so they cost the input rate);
- cache writes at ``cache_write_per_mtok`` (blank: the provider charges no write
  premium, as OpenAI, Google and DeepSeek, so they cost the input rate).

A usage row finds its price row by model name. Exports spell one model several
ways (``claude-sonnet-4-5-20250929`` in Anthropic's usage report, the alias
``claude-sonnet-4-5``, ``gpt-4.1-2025-04-14`` in OpenAI's export), so a name with
no row of its own is matched on its :func:`model_key`: lower case, a trailing
snapshot date dropped and a dot between version digits read as a hyphen. A dated
snapshot priced apart from its alias (``gpt-4o-2024-05-13``) gets its own row,
which an exact match always prefers.

A model with no row at all is *unpriced*: its cost stays null and its name is
reported, never costed at zero or at another model's rate.

Known shortcoming: a row holds one rate per token kind, so prices that depend on
the request (Anthropic's and Google's long-prompt tiers, OpenAI's batch, flex and
priority tiers, DeepSeek's time-of-day rates, Anthropic's 1-hour cache writes) are
priced at the standard rate; ``config/README.md`` lists what this misses.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

PRICE_COLUMNS = (
    "provider",
    "model",
    "effective_date",
    "input_per_mtok",
    "output_per_mtok",
    "cached_input_per_mtok",
    "cache_write_per_mtok",
    "currency",
    "source",
)
OPTIONAL_RATES = ("cached_input_per_mtok", "cache_write_per_mtok")
TOKENS_PER_UNIT = 1_000_000
SNAPSHOT_DATE = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2})$")
VERSION_DOT = re.compile(r"(?<=\d)\.(?=\d)")

COST_COLUMNS = (
    "cost_uncached_input",
    "cost_cached_input",
    "cost_cache_write",
    "cost_output",
    "cost",
)


@dataclass(frozen=True)
class Price:
    """One row of the price table: the rates of a model from ``effective_date`` on."""

    provider: str
    model: str
    effective_date: dt.date
    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None
    cache_write_per_mtok: float | None
    currency: str
    source: str

    @property
    def cached_rate(self) -> float:
        """A blank cached-input price means the provider bills cache reads as plain input."""
        return _or_input_rate(self.cached_input_per_mtok, self.input_per_mtok)

    @property
    def cache_write_rate(self) -> float:
        """A blank cache-write price means cache writes are billed as plain input."""
        return _or_input_rate(self.cache_write_per_mtok, self.input_per_mtok)


def _or_input_rate(rate: float | None, input_rate: float) -> float:
    return input_rate if rate is None else rate


def model_key(model: str) -> str:
    """The spelling-free name of a model, so a dated snapshot finds its alias's price."""
    undated = SNAPSHOT_DATE.sub("", model.strip().lower())
    return VERSION_DOT.sub("-", undated)


class PriceTable:
    """All price rows, grouped per ``(provider, model)`` and sorted by effective date."""

    def __init__(self, prices: list[Price]) -> None:
        self._by_model: dict[tuple[str, str], list[Price]] = {}
        for price in sorted(prices, key=lambda row: row.effective_date):
            self._by_model.setdefault((price.provider, price.model), []).append(price)
        currencies = {price.currency for price in prices}
        if len(currencies) > 1:
            raise InputError(
                f"price table mixes currencies {sorted(currencies)}: usagecast adds costs up, "
                "so every row must use one currency"
            )
        self.currency = currencies.pop() if currencies else "USD"
        self._by_key: dict[tuple[str, str], list[str]] = {}
        for provider, model in sorted(self._by_model):
            self._by_key.setdefault((provider, model_key(model)), []).append(model)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return self.resolve(*key) is not None

    def models(self) -> list[tuple[str, str]]:
        return sorted(self._by_model)

    def resolve(self, provider: str, model: str) -> str | None:
        """The table's name for ``model``: itself, else the one row name with its key.

        When several rows share the key (an alias and a snapshot priced apart), the
        undated alias is the one a new snapshot of the same model is billed like.
        """
        if (provider, model) in self._by_model:
            return model
        names = self._by_key.get((provider, model_key(model)), [])
        undated = [name for name in names if not SNAPSHOT_DATE.search(name)]
        candidates = names if len(names) == 1 else undated
        return candidates[0] if len(candidates) == 1 else None

    def history(self, provider: str, model: str) -> list[Price]:
        """Every row of ``model`` (or of the name it resolves to), oldest first."""
        name = self.resolve(provider, model)
        return [] if name is None else list(self._by_model[(provider, name)])

    def rate_on(self, provider: str, model: str, day: dt.date) -> Price | None:
        """The row in effect on ``day``; ``None`` when the model is not in the table.

        A day before the model's first listed price is priced at that first price
        (usage replayed from before a model's launch still needs a cost); this is
        logged by :func:`price_usage`, which sees whole frames.
        """
        rows = self.history(provider, model)
        if not rows:
            return None
        in_effect = rows[0]
        for row in rows:
            if row.effective_date <= day:
                in_effect = row
            else:
                break
        return in_effect


def _parse_rate(path: Path, line: int, field: str, raw: str, optional: bool) -> float | None:
    text = raw.strip()
    if not text:
        if optional:
            return None
        raise InputError(f"{path}:{line}: field {field!r} is empty; a price is required")
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{path}:{line}: field {field!r}={text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{path}:{line}: field {field!r}={text!r} must be a price >= 0")
    return value


def load_prices(path: Path) -> PriceTable:
    """Read and check the price table; an error names the file, line and field."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot read the price table {path}: {error}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [column for column in PRICE_COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    prices: list[Price] = []
    seen: set[tuple[str, str, dt.date]] = set()
    for line, row in enumerate(reader, start=2):
        provider, model = row["provider"].strip(), row["model"].strip()
        if not provider or not model:
            raise InputError(f"{path}:{line}: provider and model must not be empty")
        try:
            effective = dt.date.fromisoformat(row["effective_date"].strip())
        except ValueError:
            raise InputError(
                f"{path}:{line}: field 'effective_date'={row['effective_date']!r} "
                "is not a YYYY-MM-DD date"
            ) from None
        key = (provider, model, effective)
        if key in seen:
            raise InputError(
                f"{path}:{line}: a second row for {provider}/{model} effective {effective}"
            )
        seen.add(key)
        rates = {
            field: _parse_rate(path, line, field, row[field] or "", field in OPTIONAL_RATES)
            for field in PRICE_COLUMNS[3:7]
        }
        prices.append(
            Price(
                provider=provider,
                model=model,
                effective_date=effective,
                currency=(row["currency"] or "").strip() or "USD",
                source=(row["source"] or "").strip(),
                **rates,
            )
        )
    logger.debug("read %d price rows for %d models from %s", len(prices), len(seen), path)
    return PriceTable(prices)


def price_usage(
    usage: pd.DataFrame,
    prices: PriceTable,
    *,
    day_column: str = "day",
    provider: str | None = None,
    model: str | None = None,
) -> pd.DataFrame:
    """Add the cost of each row's tokens at the rates in effect on its day.

    ``usage`` needs ``provider``, ``model`` (unless both are given, to price the
    same tokens on another model), the day column (dates) and the four token
    columns. Returns a copy with ``price_effective_date``, one column per cost part,
    ``cost`` (null where unpriced) and ``priced``.
    """
    import numpy as np
    import pandas as pd

    priced = usage.copy()
    if provider is not None and model is not None:
        priced["provider"], priced["model"] = provider, model
    days = pd.to_datetime(priced[day_column]).dt.date

    input_tokens = priced["input_tokens"].astype("float64").fillna(0.0)
    cached = priced["cached_input_tokens"].astype("float64").fillna(0.0)
    cache_write = priced["cache_write_tokens"].astype("float64").fillna(0.0)
    output = priced["output_tokens"].astype("float64").fillna(0.0)
    uncached = input_tokens - cached - cache_write
    if (uncached < 0).any():
        logger.warning(
            "%d rows report more cached + cache-write tokens than input tokens; "
            "their uncached part is counted as 0",
            int((uncached < 0).sum()),
        )
        uncached = uncached.clip(lower=0.0)

    rate_columns = ("input", "cached", "cache_write", "output")
    rates = {name: np.full(len(priced), np.nan) for name in rate_columns}
    effective = np.full(len(priced), None, dtype=object)
    pairs = list(zip(priced["provider"], priced["model"], strict=True))
    for (row_provider, row_model), positions in _group_positions(pairs).items():
        history = prices.history(row_provider, row_model)
        if not history:
            continue
        if history[0].model != row_model:
            logger.info(
                "%s/%s has no row of its own; priced at the rows of %s/%s",
                row_provider,
                row_model,
                row_provider,
                history[0].model,
            )
        first = history[0].effective_date
        early = [days.iloc[i] for i in positions if days.iloc[i] < first]
        if early:
            logger.warning(
                "%s/%s: %d rows from %s are before its first listed price (%s); "
                "priced at that first price",
                row_provider,
                row_model,
                len(early),
                min(early),
                first,
            )
        effective_dates = np.array([row.effective_date for row in history], dtype="datetime64[D]")
        row_days = np.array([days.iloc[i] for i in positions], dtype="datetime64[D]")
        in_effect = np.searchsorted(effective_dates, row_days, side="right") - 1
        for position, index in zip(positions, np.clip(in_effect, 0, None), strict=True):
            price = history[index]
            rates["input"][position] = price.input_per_mtok
            rates["cached"][position] = price.cached_rate
            rates["cache_write"][position] = price.cache_write_rate
            rates["output"][position] = price.output_per_mtok
            effective[position] = price.effective_date

    priced["price_effective_date"] = effective
    priced["cost_uncached_input"] = uncached.to_numpy() * rates["input"] / TOKENS_PER_UNIT
    priced["cost_cached_input"] = cached.to_numpy() * rates["cached"] / TOKENS_PER_UNIT
    priced["cost_cache_write"] = cache_write.to_numpy() * rates["cache_write"] / TOKENS_PER_UNIT
    priced["cost_output"] = output.to_numpy() * rates["output"] / TOKENS_PER_UNIT
    priced["cost"] = priced[list(COST_COLUMNS[:4])].sum(axis=1, min_count=4)
    priced["priced"] = ~np.isnan(rates["input"])
    return priced


def _group_positions(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], list[int]]:
    groups: dict[tuple[str, str], list[int]] = {}
    for position, pair in enumerate(pairs):
        groups.setdefault(pair, []).append(position)
    return groups


def unpriced_models(priced: pd.DataFrame) -> list[str]:
    """``provider/model`` names of the rows :func:`price_usage` could not price."""
    missing = priced.loc[~priced["priced"], ["provider", "model"]].drop_duplicates()
    return sorted(f"{provider}/{model}" for provider, model in missing.itertuples(index=False))
