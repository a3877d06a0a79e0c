"""Products & matching: similar products (substitutes vs complements), creator→product recommendations,
merchant→creator recruitment and interest drift — shown when the matching tables are built."""

from __future__ import annotations

import polars as pl
import streamlit as st

from liftboard import app_data
from pages import _ui as ui

user = ui.current_user()
st.title("Products & matching")

TABLES = {
    "similar_products": "Similar products",
    "product_pairs": "Bought together",
    "creator_product_recs": "Products for creators",
    "merchant_creator_recs": "Creators to recruit",
    "creator_interests": "Interests and drift",
}
present = {name: label for name, label in TABLES.items() if app_data.has_snapshot(name)}
if not present:
    st.info("The matching tables are not in the current build yet.")
    st.stop()
search = st.text_input(
    "Filter by id (product, creator or merchant)",
    key="pm_search",
    bind="query-params",
    icon=":material/search:",
)
sheets: dict[str, pl.DataFrame] = {}
for tab, (name, label) in zip(st.tabs(list(present.values())), present.items(), strict=True):
    with tab:
        frame = app_data.snapshot(name, user)
        if search.strip():
            ids = [c for c in frame.columns if c.endswith("_id")]
            if ids:
                frame = frame.filter(
                    pl.any_horizontal(pl.col(c).cast(pl.String) == search.strip() for c in ids)
                )
        kind = next((c for c in frame.columns if c in ("relation", "kind", "pair_kind")), None)
        if kind:
            counts = frame.group_by(kind).len("pairs").sort("pairs", descending=True)
            st.caption(" · ".join(f"{r[kind]}: {r['pairs']:,}" for r in counts.iter_rows(named=True)))
        if "drifting" in frame.columns:
            st.caption(f"{frame.filter(pl.col('drifting'))['creator_id'].n_unique():,} creators drifting")
        ui.table(frame.head(5_000), key=f"pm_{name}", height=380)
        st.caption(f"{frame.height:,} rows (first 5,000 shown; exports have all rows)")
        sheets[label] = frame
ui.downloads("matching", sheets, key="dl_matching", csv=False, label="Excel: all tables")
