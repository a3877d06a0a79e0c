"""Products & matching: similar products (substitutes vs complements), creator→product recommendations,
merchant→creator recruitment and interest drift — shown when the matching tables are built."""

from __future__ import annotations

import polars as pl
import streamlit as st

from matching.recommender import FIGURE_DAYS, FIGURES
from matching.relations import PAIR_PRIOR_BASKETS
from webapp import data as app_data
from webapp import ui

user = ui.current_user()
st.title("Products & matching")

TABLES = {
    "similar_products": "Similar products",
    "product_pairs": "Bought together",
    "creator_product_recs": "Products for creators",
    "merchant_creator_recs": "Creators to recruit",
    "creator_interests": "Interests and drift",
}


# basket statistics read poorly as 2-decimal numbers (a support of 2 in a million baskets showed 0.00)
# and as scientific notation (1.7e-6): support is shown per million baskets
PER_MILLION = 1_000_000
NUMBER_COLUMNS = {
    "support": st.column_config.NumberColumn(
        "Support (per million baskets)",
        format="%.1f",
        help="Baskets holding both products, per million baskets.",
    ),
    "confidence": ui.described_column(
        "confidence", "Confidence", "Share of the baskets with product a that also hold product b."
    ),
    "pmi": ui.described_column("pmi", "PMI", "Pointwise mutual information (log)."),
    "pair_strength": ui.described_column(
        "pair_strength",
        "Strength",
        f"Adjusted lift shrunk toward 1 by {PAIR_PRIOR_BASKETS:g} baskets: (seen + {PAIR_PRIOR_BASKETS:g}) / "
        f"(expected + {PAIR_PRIOR_BASKETS:g}). Pairs seen in a handful of baskets do not lead.",
    ),
    "title_a": st.column_config.TextColumn("Title a"),
    "title_b": st.column_config.TextColumn("Title b"),
}
present = {name: label for name, label in TABLES.items() if app_data.has_snapshot(name)}
if not present:
    st.info("The matching tables are not in the current build yet.")
    st.stop()
search = st.text_input(
    "Search by id, product title or creator handle",
    key="pm_search",
    bind="query-params",
    icon=":material/search:",
    placeholder="p0000921, necklace, @glowhaul12",
    help="An exact id, or a word of a product title or creator handle (with or without @).",
).strip()
frames = {name: app_data.matching_table(user, name, search) for name in present}
# each tab says how many rows match; a search opens the first tab with matches, not an empty one
labels = {name: f"{label} ({frames[name].height:,})" for name, label in present.items()}
opened = next((labels[name] for name in present if frames[name].height), None) if search else None
for tab, (name, label) in zip(st.tabs(list(labels.values()), default=opened), present.items(), strict=True):
    with tab:
        frame = frames[name]
        kind = next((c for c in frame.columns if c in ("relation", "kind", "pair_kind")), None)
        if kind:
            counts = frame.group_by(kind).len("pairs").sort("pairs", descending=True)
            st.caption(" · ".join(f"{r[kind]}: {r['pairs']:,}" for r in counts.iter_rows(named=True)))
        if "drifting" in frame.columns:
            st.caption(f"{frame.filter(pl.col('drifting'))['creator_id'].n_unique():,} creators drifting")
        if frame.height == 0:
            st.info(f"Nothing matches “{search}” in {label.lower()}.")
            continue
        if name == "product_pairs":
            st.caption("Strongest pairs first: by adjusted lift shrunk toward 1 (see Strength).")
        figures = FIGURES.get(name, {})
        if figures:
            st.caption(
                f"Model figures are about the {FIGURE_DAYS} days after the build date, as things are "
                "(no outreach): hover a column's name for what it means."
            )
        shown_rows = frame.head(5_000)
        if "support" in shown_rows.columns:
            shown_rows = shown_rows.with_columns(pl.col("support") * PER_MILLION)
        overrides = {
            **NUMBER_COLUMNS,
            **{
                column: ui.described_column(column, *text)
                for column, text in figures.items()
                if column in frame.columns
            },
        }
        ui.table(shown_rows, key=f"pm_{name}", height=380, overrides=overrides)
        shown = "all shown" if frame.height <= 5_000 else "first 5,000 shown; the downloads hold more"
        st.caption(f"{frame.height:,} rows ({shown})")
        # one table per download, each bounded (its help says how many rows): no workbook of every table
        ui.downloads(name, {label: frame}, key=f"dl_pm_{name}")
