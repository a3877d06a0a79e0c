"""The strategy catalog: every strategy the data knows, declared once, validated on load."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from core.schema import STRATEGIES
from strategies.catalog import CATALOG_PATH, load_catalog


def test_catalog_declares_every_strategy_with_a_team_and_capacity() -> None:
    catalog = load_catalog()
    assert {s.id for s in catalog.strategies} == set(STRATEGIES)
    assert {s.team for s in catalog.strategies} <= set(catalog.team_capacity)
    assert 0 < catalog.take_rate < 1
    assert catalog.horizon_days == 28
    assert catalog.frame().height == len(STRATEGIES)


def test_eligibility_and_costs_evaluate_on_features() -> None:
    catalog = load_catalog()
    features = pl.DataFrame(
        {"commission_rate_ratio_vs_category": [0.5, 1.2, None], "gmv": [1000.0, 1000.0, 1000.0]}
    )
    eligible = features.select(catalog.get("commission_to_category_median").eligible())
    assert eligible.to_series().to_list() == [True, False, False]
    cost = features.select(catalog.get("commission_boost").cost.expr(pl.col("gmv"))).to_series()
    assert cost.to_list() == [50.0, 50.0, 50.0]
    assert features.select(catalog.get("live_coaching").cost.expr(pl.col("gmv"))).item() == 60.0


def test_bad_catalogs_are_refused(tmp_path: Path) -> None:
    text = CATALOG_PATH.read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('id = "live_coaching"', 'id = "telepathy"'))
    with pytest.raises(ValueError, match="telepathy"):
        load_catalog(bad)
    bad.write_text(text.replace('op = "<="', 'op = "~"', 1))
    with pytest.raises(ValueError, match="unknown operator"):
        load_catalog(bad)
    with pytest.raises(KeyError, match="unknown strategy"):
        load_catalog().get("nope")
