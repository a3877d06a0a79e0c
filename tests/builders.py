"""Small valid inputs for every canonical table, built from the specs in ``core.schema``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from core.schema import TABLES, table_spec

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def valid_tables() -> dict[str, pl.DataFrame]:
    """A consistent little marketplace: every foreign key resolves, every value is in range."""
    rows: dict[str, dict[str, list[object]]] = {
        "creators": {
            "creator_id": ["c000001", "c000002", "c000003"],
            "handle": ["@ann", "@bob", "@cy"],
            "joined_on": [date(2024, 1, 2), date(2024, 2, 3), date(2024, 3, 4)],
            "region": ["US", "UK", "US"],
            "followers": [1200, 50, 99000],
            "primary_category": ["beauty", "home", "tech"],
            "bio": ["loves #skincare", None, "gadgets, #tech"],
        },
        "merchants": {
            "merchant_id": ["m00001", "m00002"],
            "name": ["Glow Co", "Nest"],
            "joined_on": [date(2023, 12, 1), date(2024, 1, 15)],
            "region": ["US", "UK"],
            "category": ["beauty", "home"],
            "rating": [4.5, 3.0],
            "ships_in_days": [2.0, 5.5],
        },
        "products": {
            "product_id": ["p0000001", "p0000002", "p0000003"],
            "merchant_id": ["m00001", "m00001", "m00002"],
            "title": ["Serum #glow", "Cream", "Lamp"],
            "category": ["beauty", "beauty", "home"],
            "price": [19.99, 7.5, 35.0],
            "commission_rate": [0.1, 0.15, 0.2],
            "listed_on": [date(2024, 1, 1), date(2024, 1, 5), date(2024, 2, 1)],
        },
        "showcase": {
            "creator_id": ["c000001", "c000001", "c000002"],
            "product_id": ["p0000001", "p0000002", "p0000003"],
            "added_on": [date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)],
            "removed_on": [None, date(2024, 4, 1), None],
        },
        "interventions": {
            "intervention_id": ["i0001", "i0002"],
            "entity_kind": ["creator", "merchant"],
            "entity_id": ["c000001", "m00002"],
            "strategy": ["live_coaching", "free_samples"],
            "assigned_on": [date(2024, 5, 1), date(2024, 5, 2)],
            "arm": ["treatment", "control"],
            "assignment": ["randomized", "targeted"],
        },
        "content": {
            "content_id": ["v0000001", "v0000002", "v0000003"],
            "creator_id": ["c000001", "c000002", "c000001"],
            "kind": ["video", "live", "video"],
            "published_at": [
                datetime(2024, 6, 1, 10, tzinfo=UTC),
                datetime(2024, 6, 1, 20, tzinfo=UTC),
                datetime(2024, 6, 2, 8, 30, tzinfo=UTC),
            ],
            "duration_s": [45, 3600, 30],
            "caption": ["#glow morning routine", None, "lamp unboxing #home"],
        },
        "engagement": {
            "date": [date(2024, 6, 1), date(2024, 6, 2), date(2024, 6, 2)],
            "content_id": ["v0000001", "v0000001", "v0000003"],
            "product_id": ["p0000001", "p0000001", "p0000003"],
            "impressions": [1000, 800, 300],
            "views": [500, 400, 100],
            "clicks": [40, 20, 5],
            "add_to_carts": [8, 3, 1],
        },
        "orders": {
            "order_id": ["o0000001", "o0000002", "o0000003", "o0000004"],
            "ordered_at": [
                datetime(2024, 6, 1, 11, tzinfo=UTC),
                datetime(2024, 6, 1, 12, tzinfo=UTC),
                datetime(2024, 6, 2, 9, tzinfo=UTC),
                datetime(2024, 6, 3, 9, tzinfo=UTC),
            ],
            "buyer_id": ["b1", "b2", "b3", "b1"],
            "creator_id": ["c000001", "c000001", "c000002", "c000001"],
            "content_id": ["v0000001", None, "v0000002", "v0000003"],
            "product_id": ["p0000001", "p0000002", "p0000003", "p0000001"],
            "merchant_id": ["m00001", "m00001", "m00002", "m00001"],
            "quantity": [1, 2, 1, 3],
            "gmv": [19.99, 15.0, 35.0, 59.97],
            "commission": [2.0, 2.25, 7.0, 6.0],
            "status": ["completed", "completed", "refunded", "cancelled"],
        },
    }
    return {name: pl.DataFrame(columns, schema=TABLES[name].schema) for name, columns in rows.items()}


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column as ISO text, the way a CSV or NDJSON file carries it."""
    return frame.with_columns(
        [
            pl.col(name).dt.to_string("%Y-%m-%dT%H:%M:%S%.f")
            if isinstance(dtype, pl.Datetime)
            else pl.col(name).cast(pl.String)
            for name, dtype in frame.schema.items()
        ]
    )


def write(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` in the format named by the suffix of ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.write_parquet(path)
    elif path.suffix == ".csv":
        as_text(frame).write_csv(path)
    elif path.suffix in {".ndjson", ".jsonl"}:
        as_text(frame).write_ndjson(path)
    else:
        raise ValueError(path)
    return path


def write_all(
    directory: Path, fmt: str = "parquet", tables: dict[str, pl.DataFrame] | None = None
) -> list[Path]:
    """Write every table (default: ``valid_tables()``) as ``<table>.<fmt>`` in ``directory``."""
    frames = tables if tables is not None else valid_tables()
    return [write(frame, directory / f"{name}.{fmt}") for name, frame in frames.items()]


def canonical(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """``frame`` sorted by the table's primary key (for order-insensitive comparisons)."""
    return frame.sort(list(table_spec(table).primary_key))
