"""The canonical tables of Liftboard, declared once.

Each table is a `TableSpec`: its `pl.Schema`, primary key, foreign keys, allowed values, numeric
ranges, nullable columns, time columns that may not lie in the future, and the rules across columns
and tables (date order, ownership, catalogued values that must suit the row's kind, required text not
blank). Ingest validates every input against these specs, the simulator writes them, the lake and the
state DB store them, and tests build their fixtures from them. Dimensions (small, updated in place) live
in the state DB and are mirrored to the lake as one Parquet file each; facts (large, append-only) live
in the lake partitioned by day.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import polars as pl

from core.strategies import ENTITY_KINDS, STRATEGY_REGISTRY, UNKNOWN_STRATEGY_HELP

UTC_DATETIME: pl.DataType | type[pl.DataType] = pl.Datetime("us", "UTC")

CONTENT_KINDS = ("video", "live")
ORDER_STATUSES = ("completed", "refunded", "cancelled")
ARMS = ("treatment", "control")
ASSIGNMENTS = ("randomized", "targeted")
# The strategy ids, in the catalog's order (declared once, in the catalog file: see core.strategies).
CREATOR_STRATEGIES = STRATEGY_REGISTRY.ids("creator")
MERCHANT_STRATEGIES = STRATEGY_REGISTRY.ids("merchant")
STRATEGIES = CREATOR_STRATEGIES + MERCHANT_STRATEGIES


@dataclass(frozen=True)
class ForeignKey:
    """``column`` must name an existing ``table.ref_column``; ``when`` restricts the check to rows
    where another column has a given value (interventions point at creators *or* merchants)."""

    column: str
    table: str
    ref_column: str
    when: tuple[str, str] | None = None


@dataclass(frozen=True)
class CatalogColumn:
    """A text column whose values a catalog file declares (the interventions' ``strategy``).

    Ingest stores ``aliases`` as their canonical value (a quarantined row keeps the value as read),
    quarantines a value that is neither, with ``unknown_help`` (``{value}`` stands for the value) and the
    known values, and quarantines a value whose kind (``kinds``) is not the row's ``kind_column``.
    """

    column: str
    noun: str
    kinds: Mapping[str, str]  # canonical value → the value of ``kind_column`` it applies to
    kind_column: str
    aliases: Mapping[str, str]  # alias → canonical value
    unknown_help: str


@dataclass(frozen=True)
class DateOrder:
    """In one row, ``later`` may not be before ``earlier`` (a null in either is left to the other checks):
    a showcase entry is removed on or after the day it was added."""

    earlier: str
    later: str


@dataclass(frozen=True)
class Ownership:
    """A row's ``owner`` must own the ``item`` it references, at the row's time.

    The ``table`` row whose ``ref_item`` is the row's ``item`` must have ``ref_owner`` equal to the row's
    ``owner``, and when ``at`` and ``since`` are given, that row's ``since`` (a date) may not be after the
    row's ``at`` (the item is owned from that day: ``since_means`` says so in messages). An order's merchant
    must own its product, listed by the order's day. The stored table and the same run's rows count; an
    item that is not known at all is left to the foreign-key check.
    """

    item: str
    owner: str
    table: str
    ref_item: str
    ref_owner: str
    at: str | None = None
    since: str | None = None
    since_means: str = "existed"


@dataclass(frozen=True)
class TableSpec:
    """Everything Liftboard knows about one canonical table.

    Rules across columns and tables are declared here too: ``date_order`` (one date may not come before
    another in the same row), ``ownership`` (a row's owner column must own, at the row's time, the item it
    references), ``catalog_columns`` (a catalogued value must suit the row's kind) and ``required_text``
    (a required text value may not be blank).
    """

    name: str
    schema: pl.Schema
    primary_key: tuple[str, ...]
    storage: Literal["db", "lake"]
    partition_by: str | None = None
    # a fact whose stored row a later row with the same key but other values updates (a Delta MERGE),
    # its history kept in the lake table ``<name>_changes``; otherwise a stored key makes a duplicate
    updatable: bool = False
    foreign_keys: tuple[ForeignKey, ...] = ()
    allowed: MappingProxyType[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    ranges: MappingProxyType[str, tuple[float | None, float | None]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    nullable: frozenset[str] = frozenset()
    not_in_future: tuple[str, ...] = ()
    catalog_columns: tuple[CatalogColumn, ...] = ()
    date_order: tuple[DateOrder, ...] = ()
    ownership: tuple[Ownership, ...] = ()

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names())

    @property
    def required_text(self) -> tuple[str, ...]:
        """The text columns that may not be missing, hence not blank either (empty or only whitespace)."""
        return tuple(
            name for name, dtype in self.schema.items() if dtype == pl.String and name not in self.nullable
        )

    def empty(self) -> pl.DataFrame:
        """An empty frame with this table's schema (fixtures, empty lakes)."""
        return pl.DataFrame(schema=self.schema)


def _frozen(mapping: dict) -> MappingProxyType:  # type: ignore[type-arg]
    return MappingProxyType(mapping)


CREATORS = TableSpec(
    name="creators",
    schema=pl.Schema(
        {
            "creator_id": pl.String,
            "handle": pl.String,
            "joined_on": pl.Date,
            "region": pl.String,
            "followers": pl.Int64,
            "primary_category": pl.String,
            "bio": pl.String,
        }
    ),
    primary_key=("creator_id",),
    storage="db",
    ranges=_frozen({"followers": (0, None)}),
    nullable=frozenset({"bio"}),
    not_in_future=("joined_on",),
)

MERCHANTS = TableSpec(
    name="merchants",
    schema=pl.Schema(
        {
            "merchant_id": pl.String,
            "name": pl.String,
            "joined_on": pl.Date,
            "region": pl.String,
            "category": pl.String,
            "rating": pl.Float64,
            "ships_in_days": pl.Float64,
        }
    ),
    primary_key=("merchant_id",),
    storage="db",
    ranges=_frozen({"rating": (1.0, 5.0), "ships_in_days": (0.0, 60.0)}),
    not_in_future=("joined_on",),
)

PRODUCTS = TableSpec(
    name="products",
    schema=pl.Schema(
        {
            "product_id": pl.String,
            "merchant_id": pl.String,
            "title": pl.String,
            "category": pl.String,
            "price": pl.Float64,
            "commission_rate": pl.Float64,
            "listed_on": pl.Date,
        }
    ),
    primary_key=("product_id",),
    storage="db",
    foreign_keys=(ForeignKey("merchant_id", "merchants", "merchant_id"),),
    ranges=_frozen({"price": (0.01, None), "commission_rate": (0.0, 1.0)}),
    not_in_future=("listed_on",),
)

SHOWCASE = TableSpec(
    name="showcase",
    schema=pl.Schema(
        {
            "creator_id": pl.String,
            "product_id": pl.String,
            "added_on": pl.Date,
            "removed_on": pl.Date,
        }
    ),
    primary_key=("creator_id", "product_id", "added_on"),
    storage="db",
    foreign_keys=(
        ForeignKey("creator_id", "creators", "creator_id"),
        ForeignKey("product_id", "products", "product_id"),
    ),
    nullable=frozenset({"removed_on"}),
    not_in_future=("added_on", "removed_on"),
    date_order=(DateOrder(earlier="added_on", later="removed_on"),),
)

INTERVENTIONS = TableSpec(
    name="interventions",
    schema=pl.Schema(
        {
            "intervention_id": pl.String,
            "entity_kind": pl.String,
            "entity_id": pl.String,
            "strategy": pl.String,
            "assigned_on": pl.Date,
            "arm": pl.String,
            "assignment": pl.String,
        }
    ),
    primary_key=("intervention_id",),
    storage="db",
    foreign_keys=(
        ForeignKey("entity_id", "creators", "creator_id", when=("entity_kind", "creator")),
        ForeignKey("entity_id", "merchants", "merchant_id", when=("entity_kind", "merchant")),
    ),
    allowed=_frozen({"entity_kind": ENTITY_KINDS, "arm": ARMS, "assignment": ASSIGNMENTS}),
    not_in_future=("assigned_on",),
    catalog_columns=(
        CatalogColumn(
            column="strategy",
            noun="strategy",
            kinds=STRATEGY_REGISTRY.kinds,
            kind_column="entity_kind",
            aliases=STRATEGY_REGISTRY.aliases,
            unknown_help=UNKNOWN_STRATEGY_HELP,
        ),
    ),
)

CONTENT = TableSpec(
    name="content",
    schema=pl.Schema(
        {
            "content_id": pl.String,
            "creator_id": pl.String,
            "kind": pl.String,
            "published_at": UTC_DATETIME,
            "duration_s": pl.Int64,
            "caption": pl.String,
        }
    ),
    primary_key=("content_id",),
    storage="lake",
    partition_by="published_at",
    foreign_keys=(ForeignKey("creator_id", "creators", "creator_id"),),
    allowed=_frozen({"kind": CONTENT_KINDS}),
    ranges=_frozen({"duration_s": (1, None)}),
    nullable=frozenset({"caption"}),
    not_in_future=("published_at",),
)

ENGAGEMENT = TableSpec(
    name="engagement",
    schema=pl.Schema(
        {
            "date": pl.Date,
            "content_id": pl.String,
            "product_id": pl.String,
            "impressions": pl.Int64,
            "views": pl.Int64,
            "clicks": pl.Int64,
            "add_to_carts": pl.Int64,
        }
    ),
    primary_key=("date", "content_id", "product_id"),
    storage="lake",
    partition_by="date",
    foreign_keys=(
        ForeignKey("content_id", "content", "content_id"),
        ForeignKey("product_id", "products", "product_id"),
    ),
    ranges=_frozen(
        {"impressions": (0, None), "views": (0, None), "clicks": (0, None), "add_to_carts": (0, None)}
    ),
    not_in_future=("date",),
)

ORDERS = TableSpec(
    name="orders",
    schema=pl.Schema(
        {
            "order_id": pl.String,
            "ordered_at": UTC_DATETIME,
            "buyer_id": pl.String,
            "creator_id": pl.String,
            "content_id": pl.String,
            "product_id": pl.String,
            "merchant_id": pl.String,
            "quantity": pl.Int64,
            "gmv": pl.Float64,
            "commission": pl.Float64,
            "status": pl.String,
        }
    ),
    primary_key=("order_id",),
    storage="lake",
    partition_by="ordered_at",
    updatable=True,
    foreign_keys=(
        ForeignKey("creator_id", "creators", "creator_id"),
        ForeignKey("content_id", "content", "content_id"),
        ForeignKey("product_id", "products", "product_id"),
        ForeignKey("merchant_id", "merchants", "merchant_id"),
    ),
    allowed=_frozen({"status": ORDER_STATUSES}),
    ranges=_frozen({"quantity": (1, None), "gmv": (0.0, None), "commission": (0.0, None)}),
    nullable=frozenset({"content_id"}),
    not_in_future=("ordered_at",),
    ownership=(
        Ownership(
            item="product_id",
            owner="merchant_id",
            table="products",
            ref_item="product_id",
            ref_owner="merchant_id",
            at="ordered_at",
            since="listed_on",
            since_means="was listed",
        ),
    ),
)

# Dependency order: a table's foreign keys point only at tables before it.
TABLES: MappingProxyType[str, TableSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (CREATORS, MERCHANTS, PRODUCTS, SHOWCASE, INTERVENTIONS, CONTENT, ENGAGEMENT, ORDERS)
    }
)
DIMENSION_TABLES = tuple(name for name, spec in TABLES.items() if spec.storage == "db")
FACT_TABLES = tuple(name for name, spec in TABLES.items() if spec.storage == "lake")


def table_spec(name: str) -> TableSpec:
    """The spec of a canonical table, or a clear error listing the known ones."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known tables: {', '.join(TABLES)}") from None
