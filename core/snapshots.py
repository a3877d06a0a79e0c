"""The catalog of published snapshots: every table a build publishes, declared once.

A build (`liftboard.build`) writes each snapshot as ``<name>.parquet`` in its build folder; readers (the
app's data layer, the reports, the CLI) load them by name through `datastore.snapshots`. Each entry says
which stage writes it, the columns that identify a row, how it is scoped for a merchant-success user and
who reads it. A name that is not in the catalog is refused when read, and a test checks that a build
writes exactly these snapshots with their key columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scope = Literal["merchant", "entity", "platform", "public"]
"""How a merchant-success user's view of the snapshot is restricted:

- ``merchant``: rows of their merchants (a ``merchant_id`` column);
- ``entity``: merchant rows of their merchants (``entity_kind``/``entity_id``);
- ``platform``: platform-wide or creator data, refused to them;
- ``public``: no merchant's data (the strategy catalog), shown whole to everyone.
"""


@dataclass(frozen=True)
class Snapshot:
    """One published table."""

    name: str
    stage: str
    """The build stage that writes it."""
    key: tuple[str, ...]
    """Columns that identify a row (unique together in every build); empty for a sample."""
    scope: Scope
    readers: tuple[str, ...]
    """Packages that read it (for whoever changes its columns)."""
    description: str
    sql: bool = False
    """Also published as an SQL table ``analytics_<name>`` in the state DB."""


_APP, _REPORTS, _STRATEGIES, _CLI = "webapp", "reports", "strategies", "liftboard"

CATALOG: tuple[Snapshot, ...] = (
    Snapshot(
        "product_daily",
        "daily facts",
        ("date", "product_id"),
        "merchant",
        (_APP,),
        "Orders and engagement per product and day.",
    ),
    Snapshot(
        "merchant_daily",
        "daily facts",
        ("date", "merchant_id", "creator_id", "region"),
        "merchant",
        (_APP, _REPORTS),
        "Orders and engagement per merchant, creator, buyer region and day.",
    ),
    Snapshot(
        "creator_daily",
        "daily facts",
        ("date", "creator_id", "content_kind", "region"),
        "platform",
        (_APP, _REPORTS),
        "Content, engagement and orders per creator and day.",
    ),
    Snapshot(
        "kpi_daily",
        "KPIs",
        ("period_start", "breakdown", "segment", "metric"),
        "platform",
        (_APP,),
        "Platform KPIs per day, overall and by breakdown.",
        sql=True,
    ),
    Snapshot(
        "kpi_weekly",
        "KPIs",
        ("period_start", "breakdown", "segment", "metric"),
        "platform",
        (_APP, _REPORTS),
        "Platform KPIs per ISO week, overall and by breakdown.",
        sql=True,
    ),
    Snapshot(
        "merchant_kpi_weekly",
        "KPIs",
        ("period_start", "breakdown", "segment", "metric"),
        "platform",
        (_APP, _REPORTS),
        "KPIs per merchant (in ``segment``) and week; read whole by the reports, refused to "
        "merchant-success users in the app.",
    ),
    Snapshot(
        "creator_features",
        "features",
        ("creator_id",),
        "platform",
        (_APP, _REPORTS),
        "Creator features as of the build date.",
        sql=True,
    ),
    Snapshot(
        "merchant_features",
        "features",
        ("merchant_id",),
        "merchant",
        (_APP, _REPORTS, _CLI),
        "Merchant features as of the build date.",
        sql=True,
    ),
    Snapshot(
        "creator_segments",
        "segments",
        ("creator_id",),
        "platform",
        (_APP, _REPORTS),
        "Creator tier, lifecycle stage and value segment.",
        sql=True,
    ),
    Snapshot(
        "merchant_segments",
        "segments",
        ("merchant_id",),
        "merchant",
        (_APP, _REPORTS),
        "Merchant lifecycle stage and value segment.",
        sql=True,
    ),
    Snapshot(
        "creator_cohorts",
        "cohorts",
        ("cohort_kind", "cohort_week", "weeks_since"),
        "platform",
        (_APP,),
        "Creator cohort retention by joining week.",
        sql=True,
    ),
    Snapshot(
        "merchant_cohorts",
        "cohorts",
        ("cohort_kind", "cohort_week", "weeks_since"),
        "platform",
        (_APP,),
        "Merchant cohort retention by joining week.",
        sql=True,
    ),
    Snapshot(
        "top_creators",
        "movers",
        ("start", "rank"),
        "platform",
        (_APP,),
        "Leaderboard of creators by GMV.",
        sql=True,
    ),
    Snapshot(
        "top_merchants",
        "movers",
        ("start", "rank"),
        "merchant",
        (_APP,),
        "Leaderboard of merchants by GMV.",
        sql=True,
    ),
    Snapshot(
        "top_products",
        "movers",
        ("start", "rank"),
        "merchant",
        (_APP,),
        "Leaderboard of products by GMV.",
        sql=True,
    ),
    Snapshot(
        "rising_creators",
        "movers",
        ("creator_id",),
        "platform",
        (_APP, _REPORTS),
        "Creators whose GMV grew most against the previous window.",
        sql=True,
    ),
    Snapshot(
        "declining_creators",
        "movers",
        ("creator_id",),
        "platform",
        (_APP, _REPORTS),
        "Creators whose GMV fell most.",
        sql=True,
    ),
    Snapshot(
        "rising_merchants",
        "movers",
        ("merchant_id",),
        "merchant",
        (_APP, _REPORTS),
        "Merchants whose GMV grew most.",
        sql=True,
    ),
    Snapshot(
        "declining_merchants",
        "movers",
        ("merchant_id",),
        "merchant",
        (_APP, _REPORTS),
        "Merchants whose GMV fell most.",
        sql=True,
    ),
    Snapshot(
        "gmv_change_contributions",
        "movers",
        ("dimension", "segment"),
        "platform",
        (_APP, _REPORTS),
        "Which categories, regions and tiers drove the GMV change.",
        sql=True,
    ),
    Snapshot(
        "recommendations",
        "strategies",
        ("entity_kind", "entity_id", "strategy"),
        "entity",
        (_APP, _REPORTS),
        "Predicted 28-day uplift, cost, net value and rationale per entity and strategy.",
    ),
    Snapshot(
        "uplift_predictions",
        "strategies",
        ("entity_kind", "entity_id", "strategy"),
        "entity",
        (_CLI,),
        "Every entity × strategy of its kind, eligible or not: predicted 28-day uplift with its 80% "
        "interval, whether the strategy's effect is established, the learner and the run "
        "(`liftboard export uplift`); the eligible rows' figures are the recommendations'.",
    ),
    Snapshot(
        "allocation",
        "strategies",
        ("entity_kind", "entity_id", "strategy"),
        "entity",
        (_APP,),
        "The budgeted portfolio: which recommendations the budget and capacities fund.",
    ),
    Snapshot(
        "cost_curve",
        "strategies",
        ("budget",),
        "platform",
        (_APP,),
        "Cumulative uplift against cumulative cost of the allocation.",
    ),
    Snapshot(
        "model_metrics",
        "strategies",
        ("entity_kind", "strategy", "learner"),
        "platform",
        (_APP,),
        "Validation metrics of every uplift learner per strategy.",
    ),
    Snapshot(
        "qini_curves",
        "strategies",
        ("entity_kind", "strategy", "curve", "fraction"),
        "platform",
        (_APP,),
        "Qini curves of the chosen learners.",
    ),
    Snapshot(
        "calibration",
        "strategies",
        ("entity_kind", "strategy", "decile"),
        "platform",
        (_APP,),
        "Predicted against observed uplift by prediction decile.",
    ),
    Snapshot(
        "shap_drivers",
        "strategies",
        ("entity_kind", "entity_id", "strategy", "position"),
        "entity",
        (_APP, _REPORTS),
        "The SHAP drivers of each prediction.",
    ),
    Snapshot(
        "shap_importance",
        "strategies",
        ("entity_kind", "strategy", "feature"),
        "platform",
        (_APP,),
        "Mean absolute SHAP value per feature and strategy.",
    ),
    Snapshot(
        "shap_dependence",
        "strategies",
        (),
        "platform",
        (_APP,),
        "Feature value against SHAP value, sampled, per strategy.",
    ),
    Snapshot(
        "segment_rules",
        "strategies",
        ("entity_kind", "strategy", "rule"),
        "platform",
        (_APP,),
        "Readable rules for the segments where a strategy works best.",
    ),
    Snapshot(
        "strategy_catalog",
        "strategies",
        ("strategy",),
        "public",
        (_APP, _REPORTS),
        "The strategies, their target kind, cost model and description.",
    ),
    Snapshot(
        "pilot_evidence",
        "strategies",
        ("entity_kind", "strategy"),
        "platform",
        (_APP, _CLI),
        "Per strategy: its average effect on 28-day net GMV from the randomized pilots so far, with the "
        "95% interval and whether it is established; the outcome's spread and the drivers that size and "
        "stratify a new pilot (`liftboard pilot`, the Strategy board's pilots).",
    ),
    Snapshot(
        "product_pairs",
        "matching",
        ("relation", "product_a", "product_b"),
        "platform",
        (_APP,),
        "Products bought or promoted together, with support, lift and PMI.",
    ),
    Snapshot(
        "similar_products",
        "matching",
        ("product_id", "similar_product_id"),
        "platform",
        (_APP,),
        "Substitutes by item2vec similarity.",
    ),
    Snapshot(
        "creator_product_recs",
        "matching",
        ("creator_id", "product_id"),
        "merchant",
        (_APP,),
        "Products worth promoting for each creator, ranked, with reasons.",
    ),
    Snapshot(
        "merchant_creator_recs",
        "matching",
        ("merchant_id", "creator_id"),
        "merchant",
        (_APP,),
        "Creators worth recruiting for each merchant, ranked, with reasons.",
    ),
    Snapshot(
        "creator_interests",
        "matching",
        ("creator_id", "dimension", "key", "half_life_days"),
        "platform",
        (_APP,),
        "Creators' decayed interest per category and whether it is drifting.",
    ),
)

SNAPSHOTS: dict[str, Snapshot] = {snapshot.name: snapshot for snapshot in CATALOG}
SQL_SNAPSHOTS: tuple[str, ...] = tuple(snapshot.name for snapshot in CATALOG if snapshot.sql)


def snapshot(name: str) -> Snapshot:
    """The catalog entry of ``name``.

    Raises:
        KeyError: ``name`` is not a published snapshot (the message lists the known ones).
    """
    try:
        return SNAPSHOTS[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a published snapshot; known: {', '.join(SNAPSHOTS)}") from None
