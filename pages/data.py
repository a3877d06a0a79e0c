"""Data: ingestion runs from the ledger, freshness per table, the quarantine browser (rows with their
reasons) and an upload that ingests a file through `datastore.ingest.ingest_files` (the CLI's path)."""

from __future__ import annotations

import polars as pl
import streamlit as st

from core.schema import TABLES
from webapp import data as app_data
from webapp import ui

user = ui.current_user()
st.title("Data")
manifest = app_data.manifest() or {}
st.caption(
    f"Current build {manifest.get('build_id', '—')} · data as of {manifest.get('as_of', '—')} · "
    f"built {manifest.get('created_at', '—')}"
)

tab_runs, tab_fresh, tab_quarantine, tab_upload = st.tabs(
    ["Ingestion runs", "Freshness", "Quarantine", "Upload"]
)
with tab_runs:
    runs = app_data.ingestion_runs(user)
    event = ui.table(runs, key="d_runs", export_name="ingestion_runs", select=True, height=320)
    picked = ui.selected_row(event, runs)
    if picked:
        st.markdown(f"**Loads of run {picked['run_id']}**")
        ui.table(app_data.ingestion_loads(user, picked["run_id"]), key="d_loads")
with tab_fresh:
    fresh = app_data.freshness(user)
    ui.table(fresh, key="d_fresh", export_name="freshness")
    timings = manifest.get("timings", {})
    if timings:
        st.markdown("**Build stages (seconds)**")
        ui.table(
            pl.DataFrame({"stage": list(timings), "seconds": list(timings.values())}),
            key="d_timings",
            overrides={"seconds": st.column_config.NumberColumn("Seconds", format="%.1f")},
        )
with tab_quarantine:
    files = app_data.quarantine_files(user)
    if files.height == 0:
        st.success("Nothing in quarantine: every input row was loaded.", icon=":material/verified:")
    else:
        file = st.selectbox("Quarantine file", files["file"].to_list(), key="d_qfile")
        rows = app_data.quarantine_rows(user, file)
        if "_reason" in rows.columns:
            reasons = rows.group_by("_reason").len("rows").sort("rows", descending=True)
            ui.table(reasons, key="d_reasons")
        ui.table(rows, key="d_qrows", export_name="quarantine_rows", height=320)
with tab_upload:
    st.write(
        "Load a CSV, Parquet or NDJSON file of one canonical table. Rows that fail validation are "
        "quarantined with their reason; re-loading the same file changes nothing."
    )
    with st.form("d_upload_form"):
        upload = st.file_uploader("File", type=["csv", "parquet", "ndjson", "jsonl"], key="d_upload")
        table = st.selectbox("Table", ["(from the file name)", *TABLES], key="d_table")
        go = st.form_submit_button("Ingest", type="primary", icon=":material/upload:")
    if go and upload is not None:
        with st.status(f"Ingesting {upload.name}…", expanded=True) as status:
            try:
                report = app_data.ingest_upload(
                    user, upload.name, upload.getvalue(), None if table.startswith("(") else table
                )
            except Exception as exc:  # noqa: BLE001 - shown to the user, with the file/row/column it names
                status.update(label="Ingest failed", state="error")
                st.error(str(exc))
            else:
                status.update(label=f"Run {report.run_id}: {report.status}", state="complete")
                st.write(
                    f"{report.rows_read:,} read · {report.rows_loaded:,} loaded · "
                    f"{report.rows_quarantined:,} quarantined · {report.rows_duplicate:,} duplicate"
                )
                for mapped in report.aliases_mapped:
                    st.write(mapped.text())
                st.caption("Run `liftboard build` to include the new data in the dashboards.")
