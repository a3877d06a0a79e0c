"""Alerts: what the rules found (open, acknowledged, resolved), with the observed value against the
expected range; owner, notes and status editable. Scoped: a merchant-success user sees only the alerts
about their merchants."""

from __future__ import annotations

import streamlit as st

from webapp import alerts as alert_data
from webapp import data as app_data
from webapp import ui

user = ui.current_user()
settings = app_data.settings()
st.title("Alerts")
st.caption(
    "Rules in alerts/rules.toml, evaluated after every build and stream batch against the same hours of "
    "the last 4 same weekdays (mega-sale days apart). Times are UTC."
)

counts = alert_data.status_counts(settings, user)
status = st.segmented_control(
    "Status",
    list(alert_data.STATUSES),
    default="open",
    key="al_status",
    bind="query-params",
    required=True,
    format_func=lambda s: f"{s.capitalize()} ({counts[s]})",
)
rows = alert_data.alert_rows(settings, user, status)

if rows.is_empty():
    scope = "" if user.is_ops else " about your merchants"
    st.info(f"No {status} alerts{scope}. New alerts appear here after the next evaluation.")
else:
    ui.table(rows, key="al_table", export_name=f"alerts_{status}", hide=("alert_id",))

    labels = {row["alert_id"]: f"#{row['alert_id']} · {row['Alert']}" for row in rows.iter_rows(named=True)}
    chosen = st.selectbox("Alert", list(labels), format_func=labels.__getitem__, key="al_chosen")
    current = rows.filter(rows["alert_id"] == chosen).row(0, named=True)
    with st.form("al_edit"):
        new_status = st.selectbox(
            "Status",
            list(alert_data.STATUSES),
            index=list(alert_data.STATUSES).index(status),
            format_func=str.capitalize,
            key="al_new_status",
        )
        owner = st.text_input("Owner", value=current["Owner"], key="al_owner")
        notes = st.text_area("Notes", value=current["Notes"], key="al_notes")
        if st.form_submit_button("Save", type="primary"):
            try:
                alert_data.save_alert(settings, user, chosen, status=new_status, owner=owner, notes=notes)
            except PermissionError:
                st.warning("Alert not found.")
            else:
                st.toast(f"Alert #{chosen} saved.")
                st.rerun()
