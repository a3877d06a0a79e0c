"""Data: ingestion runs from the ledger, freshness per table, the quarantine browser (rows with their
reasons) and uploads, each ingested in a background job of its own process (`liftboard.jobs`, through
`datastore.ingest.ingest_files`: the CLI's path), with their progress."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import streamlit as st

from core.access import User
from core.schema import TABLES
from liftboard.jobs import Job
from webapp import data as app_data
from webapp import ui

JOB_COLUMNS = {
    "progress": st.column_config.ProgressColumn("Progress", min_value=0.0, max_value=1.0, format="percent"),
    "size_mb": st.column_config.NumberColumn("Size (MB)", format="%.1f"),
    "seconds": st.column_config.NumberColumn("Seconds", format="%.0f"),
}


STAGES = {
    "queued": "queued",
    "starting": "starting (after any other ingest)",
    "validating": "reading and validating the rows",
    "staging": "writing the lake files",
    "committing": "committing",
}


def jobs_panel(user: User) -> None:
    """The upload jobs with their progress; when one that was running ends, the whole page reruns so that
    the runs, the freshness and the quarantine show what it did, and says what it did."""
    found = app_data.upload_jobs(user)
    for job in (job for job in found if job.active):
        stage = STAGES.get(job.stage, job.stage)
        st.progress(job.fraction, text=f"{job.file} ({job.bytes / 1e6:,.1f} MB): {stage}")
    if found:
        ui.table(app_data.jobs_frame(found), key="d_jobs", overrides=JOB_COLUMNS, hide=("job_id",))
    else:
        st.caption("No uploads yet.")
    active = {job.job_id for job in found if job.active}
    finished = set(st.session_state.get("d_active_jobs", ())) - active
    st.session_state["d_active_jobs"] = sorted(active)
    if finished:
        st.session_state["d_finished_jobs"] = sorted(finished)
        st.rerun(scope="app")


def job_outcome(job: Job) -> None:
    """What a finished upload job did (or why it failed)."""
    result = job.result or {}
    if job.state != "done":
        st.error(f"{job.file} was not ingested: {job.error}", icon=":material/error:")
        return
    st.success(
        f"{job.file} is ingested (run {result['run_id']}): {result['rows_loaded']:,} loaded · "
        f"{result.get('rows_updated', 0):,} updated · {result['rows_quarantined']:,} quarantined · "
        f"{result['rows_duplicate']:,} duplicate. "
        "Run `liftboard build` to include the new data in the dashboards.",
        icon=":material/task_alt:",
    )
    for text in result.get("aliases_mapped", []):
        st.write(text)


def submit_upload(user: User) -> None:
    """The upload form's callback (it runs before the page script): start the ingest job of the chosen
    file. It reads the file from the widget state, which shares the uploaded bytes; the value the widget
    returns to the script is a deep copy, a second whole copy of the file in the server's memory."""
    upload = st.session_state.get("d_upload")
    table = st.session_state.get("d_table", "")
    if upload is None:
        st.session_state["d_upload_message"] = ("warning", "Choose a file to ingest first.")
        return
    name = upload.name
    try:
        job = app_data.start_upload(user, upload, name, None if table.startswith("(") else table)
    except Exception as exc:  # noqa: BLE001 - shown to the user
        st.session_state["d_upload_message"] = ("error", f"Could not start the ingest of {name}: {exc}")
    else:
        st.session_state["d_upload_message"] = (
            "info",
            f"{name} ({job.bytes / 1e6:,.1f} MB) is being ingested in the background (job {job.job_id}); "
            "you may leave this page meanwhile.",
        )


user = ui.current_user()
st.title("Data")
manifest = app_data.manifest() or {}
st.caption(
    f"Current build {manifest.get('build_id', '—')} · data as of {manifest.get('as_of', '—')} · "
    f"built {ui.moment(manifest.get('created_at'))}"
)

tab_runs, tab_fresh, tab_quarantine, tab_upload, tab_users = st.tabs(
    ["Ingestion runs", "Freshness", "Quarantine", "Upload", "Users & audit"]
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
    lake_run, lake_versions = app_data.build_lake_versions(user)
    if lake_run:
        st.markdown(f"**Lake versions the current build read** (as ingestion run {lake_run} left them)")
        ui.table(lake_versions, key="d_lake_versions", export_name="build_lake_versions")
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
        "Load a CSV, Parquet or NDJSON file of one canonical table. It is ingested in the background, in a "
        "process of its own: rows that fail validation are quarantined with their reason; re-loading the "
        "same file changes nothing; the uploaded file is removed once it is ingested."
    )
    with st.form("d_upload_form", clear_on_submit=True):
        st.file_uploader("File", type=["csv", "parquet", "ndjson", "jsonl"], key="d_upload")
        st.selectbox("Table", ["(from the file name)", *TABLES], key="d_table")
        st.form_submit_button(
            "Ingest", type="primary", icon=":material/upload:", on_click=submit_upload, args=(user,)
        )
    kind, message = st.session_state.pop("d_upload_message", (None, ""))
    if kind == "info":
        st.info(message, icon=":material/upload:")
    elif kind == "warning":
        st.warning(message)
    elif kind == "error":
        st.error(message)
    found = {job.job_id: job for job in app_data.upload_jobs(user)}
    for job_id in st.session_state.pop("d_finished_jobs", []):
        if job_id in found:
            job_outcome(found[job_id])
    running = any(job.active for job in found.values())
    st.fragment(jobs_panel, run_every=timedelta(seconds=2) if running else None)(user)
with tab_users:
    st.caption(
        "Accounts are managed with `liftboard users` (list, add, remove, disable, enable, reset-password, "
        "set-merchants); every change is recorded below with who made it and when."
    )
    ui.table(app_data.accounts(user), key="d_users", export_name="users", height=240)
    st.markdown("**Account changes (newest first)**")
    audit = app_data.account_audit(user)
    if audit.height == 0:
        st.caption("No account changes recorded yet.")
    else:
        ui.table(audit, key="d_audit", export_name="account_audit", height=320)
