"""The strategy catalog: every strategy the data knows, declared once, validated on load."""

from __future__ import annotations

import tomllib
from pathlib import Path

import polars as pl
import pytest

import core.strategies
from core.schema import CREATOR_STRATEGIES, INTERVENTIONS, MERCHANT_STRATEGIES, STRATEGIES
from core.strategies import STRATEGY_REGISTRY, load_registry
from strategies.catalog import CATALOG_PATH, load_catalog

ROOT = Path(__file__).resolve().parents[2]


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


def test_the_catalog_file_is_the_one_declaration_the_schema_and_ingest_read() -> None:
    catalog = load_catalog()

    assert CATALOG_PATH == core.strategies.CATALOG_PATH
    assert [(s.id, s.target, s.aliases) for s in catalog.strategies] == [
        (s.id, s.kind, s.aliases) for s in STRATEGY_REGISTRY.strategies
    ]
    assert tuple(s.id for s in catalog.for_target("creator")) == CREATOR_STRATEGIES
    assert tuple(s.id for s in catalog.for_target("merchant")) == MERCHANT_STRATEGIES
    (strategy_column,) = INTERVENTIONS.catalog_columns
    assert dict(strategy_column.kinds) == {s.id: s.target for s in catalog.strategies}
    assert dict(strategy_column.aliases) == {a: s.id for s in catalog.strategies for a in s.aliases}
    assert strategy_column.aliases["livestream_coaching"] == "live_coaching"
    # no second file declares strategies, and the one that does ships with the package
    declaring = [
        path.relative_to(ROOT).as_posix()
        for path in ROOT.glob("*/*.toml")
        if "[[strategy]]" in path.read_text(encoding="utf-8")
    ]
    assert declaring == ["core/strategies.toml"]
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert CATALOG_PATH.name in package_data["core"]


def test_a_strategy_added_to_a_catalog_file_is_known_with_its_aliases(tmp_path: Path) -> None:
    extended = tmp_path / "strategies.toml"
    extended.write_text(
        CATALOG_PATH.read_text()
        + '\n[[strategy]]\nid = "bundle_deals"\ntarget = "merchant"\naliases = ["Bundle deals", "bundles"]\n'
    )

    registry = load_registry(extended)

    assert registry.ids("merchant") == (*MERCHANT_STRATEGIES, "bundle_deals")
    assert registry.kinds["bundle_deals"] == "merchant"
    assert registry.canonical("Bundle deals") == registry.canonical("bundles") == "bundle_deals"
    assert registry.canonical("live_training") == "live_coaching"
    assert registry.canonical("bundle_deal") is None
    # the costs and eligibility (read by load_catalog) only for strategies the shipped catalog declares
    with pytest.raises(ValueError, match="'bundle_deals' \\(merchant\\) is not one of the catalog's"):
        load_catalog(extended)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('aliases = ["livestream_coaching"', 'aliases = ["free_samples"'),
            "alias 'free_samples' of strategy 'live_coaching' is a strategy id",
        ),
        (
            ('id = "commission_boost"\n', 'id = "commission_boost"\naliases = ["live_training"]\n'),
            "alias 'live_training' of strategy 'commission_boost' is already an alias of 'live_coaching'",
        ),
        (('id = "fulfilment_fix"', 'id = "free_samples"'), "strategy 'free_samples' is declared twice"),
        (('id = "fulfilment_fix"', 'id = "Fulfilment fix"'), "id 'Fulfilment fix' must be lower-case"),
        (('target = "merchant"', 'target = "brand"'), "unknown target 'brand'"),
        (('aliases = ["livestream_coaching"', 'aliases = [" livestream_coaching"'), "aliases must be"),
    ],
)
def test_ambiguous_or_malformed_strategy_names_are_refused(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    text = CATALOG_PATH.read_text()
    assert change[0] in text
    bad = tmp_path / "strategies.toml"
    bad.write_text(text.replace(*change, 1))

    with pytest.raises(ValueError, match=message):
        load_registry(bad)
    with pytest.raises(ValueError, match=message):
        load_catalog(bad)
