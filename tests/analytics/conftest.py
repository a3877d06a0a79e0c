"""Factories for the analytics tests: daily facts from a few hand-written rows (schemas from the code)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl
import pytest

from analytics.sources import CREATOR_DAILY_SCHEMA, MERCHANT_DAILY_SCHEMA, PRODUCT_DAILY_SCHEMA
from core.metrics import BASE_COLUMNS

Rows = list[dict[str, Any]]
FrameFactory = Callable[[Rows], pl.DataFrame]

_DEFAULTS: dict[str, Any] = {
    "content_kind": "video",
    "category": "beauty",
    "region": "US",
    "tier": "nano",
    "creator_id": "c1",
    "merchant_id": "m1",
    "product_id": "p1",
}


def _frame(rows: Rows, schema: pl.Schema) -> pl.DataFrame:
    filled = []
    for row in rows:
        full = {name: (0.0 if schema[name] == pl.Float64 else 0) for name in BASE_COLUMNS if name in schema}
        full.update({name: value for name, value in _DEFAULTS.items() if name in schema})
        full.update(row)
        filled.append({name: full.get(name) for name in schema.names()})
    return pl.DataFrame(filled, schema=schema, orient="row") if filled else pl.DataFrame(schema=schema)


@pytest.fixture
def creator_daily_frame() -> FrameFactory:
    """``creator_daily`` rows: unspecified base columns are 0, dimensions get defaults (US, nano, …)."""
    return lambda rows: _frame(rows, CREATOR_DAILY_SCHEMA)


@pytest.fixture
def merchant_daily_frame() -> FrameFactory:
    """``merchant_daily`` rows with zero defaults."""
    return lambda rows: _frame(rows, MERCHANT_DAILY_SCHEMA)


@pytest.fixture
def product_daily_frame() -> FrameFactory:
    """``product_daily`` rows with zero defaults."""
    return lambda rows: _frame(rows, PRODUCT_DAILY_SCHEMA)
