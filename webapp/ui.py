"""Rendering helpers the pages share: the signed-in user and global filters, formatted tables with their
exports, metric tooltips and one Plotly look. No data access and no computation here (that is
`webapp.data`); only how things are shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from numbers import Real
from typing import Any, Literal

import plotly.graph_objects as go
import polars as pl
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from analytics import today as today_kpis
from core import metrics
from core.access import User
from strategies.wording import EVIDENCE_PROVEN, EVIDENCE_UNPROVEN, NET_VALUE_HELP, feature_label, format_value
from webapp import data as app_data

MISSING = "—"  # what a missing value shows, in grids and in formatted figures
PALETTE = ["#2F5BEA", "#F2994A", "#27AE60", "#9B51E0", "#EB5757", "#56CCF2", "#F2C94C", "#6FCF97"]


@dataclass(frozen=True)
class Filters:
    """The sidebar's global filters (set by app.py)."""

    start: date
    end: date
    preset: str
    regions: tuple[str, ...]
    categories: tuple[str, ...]
    tiers: tuple[str, ...]

    @property
    def label(self) -> str:
        parts = [f"{self.start:%d %b %Y} – {self.end:%d %b %Y}"]
        for name, values in (("region", self.regions), ("category", self.categories), ("tier", self.tiers)):
            if values:
                parts.append(f"{name}: {', '.join(values)}")
        return " · ".join(parts)


def current_user() -> User:
    """The signed-in user (app.py guarantees one before a page runs).

    Streamlit decides, before a run, whether a ``pages/`` folder means its old auto-discovered multipage
    mode; until app.py has called ``st.navigation`` in the process (and in every AppTest run), a page
    such as ``pages/movers.py`` can be run directly, bypassing app.py (login, sidebar, routing). A page
    run that way switches the process to explicit routing and reruns through app.py.
    """
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
    user = st.session_state.get("user")
    if user is None:
        st.stop()
    return user


def filters() -> Filters:
    """The global filters of the sidebar."""
    return st.session_state["filters"]


# ------------------------------------------------------------------------------------------------
# Formats
# ------------------------------------------------------------------------------------------------

COLUMN_HELP = {
    "net_value": NET_VALUE_HELP,
    "expected_uplift": "Expected incremental GMV over the next 28 days if the strategy is applied.",
    "uplift_low": "Low end of the 80% interval of the expected uplift (centred on it).",
    "uplift_high": "High end of the 80% interval of the expected uplift (centred on it).",
    "beats_default_share": "Share of paired bootstrap resamples of the holdout in which this learner's "
    "Qini area beat the average's; a learner replaces the average only at 99% or more.",
    "mean_predicted_lift": "Mean predicted relative lift of 28-day GMV of the segment's entities.",
}
"""Tooltips of columns that are not metrics of the dictionary."""


def metric_help(name: str) -> str | None:
    """The dictionary definition of metric ``name`` (tooltips), or the column's own help."""
    base = name.removesuffix("_28d").removesuffix("_91d").removesuffix("_7d").removesuffix("_prev")
    if base in metrics.METRICS:
        m = metrics.metric(base)
        return f"{m.label}: {m.definition}"
    return COLUMN_HELP.get(name)


def column_label(column: str) -> str:
    """A column's label as grids show it: the metric's label (with its window), or a readable name."""
    base = column.removesuffix("_28d").removesuffix("_91d").removesuffix("_7d")
    if base in metrics.METRICS:
        label = metrics.metric(base).label
        suffix = column[len(base) :]
        return label + (f" ({suffix[1:]})" if suffix else "")
    special = {
        "gmv_prev_28d": "GMV (prev 28d)",
        "gmv_trend_28d": "GMV trend 28d",
        "primary_category": "Category",
        "lifecycle_stage": "Lifecycle",
        "value_segment": "Value segment",
        "entity_id": "ID",
        "entity_kind": "Kind",
        "entity_name": "Name",
        "growth_pct": "Growth",
        "auuc": "AUUC",
        "qini_area": "Qini area",
        "qini_coefficient": "Qini coefficient",
        "holdout_spearman": "Holdout Spearman",
        "truth_spearman": "Truth Spearman",
        "holdout_policy_vs_oracle": "Holdout policy vs oracle",
        "truth_policy_vs_oracle": "Truth policy vs oracle",
        "beats_default_share": "Beats the average",
        "uplift_at_10": "Uplift in top 10%",
        "uplift_at_20": "Uplift in top 20%",
    }
    return special.get(
        column, column.replace("_", " ").capitalize().replace("Gmv", "GMV").replace("gmv", "GMV")
    )


def display_of(column: str, dtype: pl.DataType) -> metrics.Display | None:
    """How a numeric column reads: the metric dictionary's rule for it (`core.metrics.display_of`), else
    by its type alone (whole numbers as counts, others with two decimals); ``None`` if not numeric."""
    if not dtype.is_numeric():
        return None
    known = metrics.display_of(column)
    if known is not None:
        return known
    return metrics.Display("count") if dtype.is_integer() else metrics.Display("number", 2)


def rounded(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` as the grid shows it: money rounded to its decimals (Streamlit's "dollar" truncates) and
    percentage points scaled for their printf format; display only, exports keep every digit."""
    changes = []
    for column, dtype in frame.schema.items():
        display = display_of(column, dtype)
        if display is None or not dtype.is_float():
            continue
        if display.is_money:
            changes.append(pl.col(column).round(display.decimals))
        elif display.scale != 1.0:
            changes.append(pl.col(column) * display.scale)
    return frame.with_columns(changes)


def _number_column(display: metrics.Display, label: str, help_text: str | None) -> Any:
    return st.column_config.NumberColumn(
        label, format=display.streamlit_format, step=display.step, help=help_text
    )


def described_column(column: str, label: str, help_text: str) -> Any:
    """A number column with a label and help of its own, formatted as the metric dictionary says."""
    display = metrics.display_of(column)
    if display is None:
        raise KeyError(f"{column!r} has no display rule in core.metrics")
    return _number_column(display, label, help_text)


def column_config(frame: pl.DataFrame, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Formats, labels and tooltips of every column, from the metric dictionary (`display_of`)."""
    config: dict[str, Any] = {}
    for column, dtype in frame.schema.items():
        label, help_text = column_label(column), metric_help(column)
        display = display_of(column, dtype)
        if display is not None:
            config[column] = _number_column(display, label, help_text)
        elif dtype == pl.Date:
            config[column] = st.column_config.DateColumn(label, format="YYYY-MM-DD")
        elif isinstance(dtype, pl.Datetime):
            config[column] = st.column_config.DatetimeColumn(label, format="YYYY-MM-DD HH:mm")
        else:
            config[column] = st.column_config.Column(label, help=help_text)
    config.update(overrides or {})
    return config


# ------------------------------------------------------------------------------------------------
# Tables and exports
# ------------------------------------------------------------------------------------------------


def _export_help(what: str, rows: int | None, cap: int) -> str:
    """The help of a download button: how many rows the file holds, the cap stated when it applies."""
    if rows is None:
        return f"All rows as {what} (at most {cap:,} rows per table, to keep the server responsive)"
    if rows <= cap:
        return f"All {rows:,} rows as {what}"
    return f"The first {cap:,} of {rows:,} rows as {what} (downloads are capped at {cap:,} rows per table)"


def downloads(
    name: str,
    sheets: Mapping[str, pl.DataFrame] | Callable[[], Mapping[str, pl.DataFrame]],
    key: str,
    csv: bool = True,
    label: str = "Excel",
) -> None:
    """CSV (first sheet) and Excel (every sheet) download buttons; files are built only on click, each
    bounded (`webapp.data.CSV_MAX_ROWS`, `webapp.data.XLSX_MAX_ROWS` rows per table, stated in the help)
    so that a download never holds the server's memory hostage."""

    def resolved() -> Mapping[str, pl.DataFrame]:
        return sheets() if callable(sheets) else sheets

    heights = None if callable(sheets) else [frame.height for frame in sheets.values()]
    with st.container(horizontal=True, gap="small"):
        if csv:
            st.download_button(
                "CSV",
                data=lambda: app_data.csv_bytes(next(iter(resolved().values()))),
                file_name=f"{name}.csv",
                mime="text/csv",
                key=f"{key}_csv",
                on_click="ignore",
                icon=":material/download:",
                help=_export_help("CSV", heights[0] if heights else None, app_data.CSV_MAX_ROWS),
            )
        st.download_button(
            label,
            data=lambda: app_data.xlsx_bytes(resolved()),
            file_name=f"{name}.xlsx",
            mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            key=f"{key}_xlsx",
            on_click="ignore",
            icon=":material/table_view:",
            help=_export_help(
                "an Excel workbook"
                + ("" if heights is not None and len(heights) == 1 else " (one sheet per table)"),
                max(heights) if heights else None,
                app_data.XLSX_MAX_ROWS,
            ),
        )


def table(
    frame: pl.DataFrame,
    key: str,
    *,
    export_name: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    height: int | Literal["auto"] = "auto",
    select: bool = False,
    hide: tuple[str, ...] = (),
) -> Any:
    """A formatted dataframe with CSV + Excel exports of its rows (bounded: `downloads`); returns the
    selection if ``select``."""
    order = [c for c in frame.columns if c not in hide]
    kwargs: dict[str, Any] = {}
    if select:
        kwargs = {"on_select": "rerun", "selection_mode": "single-row", "key": key}
    if frame.height <= 8:
        height = "auto"
    event = st.dataframe(
        rounded(frame),
        column_config=column_config(frame, overrides),
        column_order=order,
        hide_index=True,
        height=height,
        placeholder=MISSING,
        **kwargs,
    )
    if export_name:
        downloads(export_name, {export_name: frame}, key=f"dl_{key}")
    return event


def selected_row(event: Any, frame: pl.DataFrame) -> dict[str, Any] | None:
    """The selected row of a single-row dataframe selection, or ``None``."""
    try:
        rows = event.selection.rows
    except AttributeError:
        return None
    if rows and rows[0] < frame.height:
        return frame.row(rows[0], named=True)
    return None


def selected_id(event: Any, frame: pl.DataFrame, column: str) -> str | None:
    """The id in ``column`` of the selected row, kept in the URL's query parameter of the same name
    (without the ``_id`` suffix) so that a copied link reopens it; else the id the URL names."""
    param = column.removesuffix("_id")
    picked = selected_row(event, frame)
    if picked is not None:
        if st.query_params.get(param) != picked[column]:
            st.query_params[param] = picked[column]
        return str(picked[column])
    return st.query_params.get(param)


# ------------------------------------------------------------------------------------------------
# Charts
# ------------------------------------------------------------------------------------------------


def style(
    fig: go.Figure,
    *,
    height: int = 340,
    y_format: str | None = None,
    x_format: str | None = None,
    legend: bool = True,
) -> go.Figure:
    """One look for every Plotly chart: title on the first line, legend on the second, compact SI money."""
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 72 if legend else 44, "b": 10},
        colorway=PALETTE,
        title={"y": 0.985, "yanchor": "top", "x": 0.01, "xanchor": "left", "font": {"size": 14}},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0, "font": {"size": 11}}
        if legend
        else None,
        showlegend=legend,
        hovermode="x unified",
        template="plotly_white",
        font={"family": "Inter, sans-serif", "size": 12},
    )
    if y_format:
        fig.layout.yaxis.tickformat = _axis(y_format)  # the primary axis only (a secondary keeps its own)
    if x_format:
        fig.update_xaxes(tickformat=_axis(x_format))
    for axis in _nonnegative_axes(fig):
        fig.layout[axis].rangemode = "nonnegative"
    return fig


_VALUE_TRACES = ("scatter", "scattergl", "bar")


def _nonnegative_axes(fig: go.Figure) -> list[str]:
    """The layout axes (``yaxis``, ``yaxis2``, ``xaxis``) whose every plotted number is at least zero:
    counts, GMV and rates never show a negative tick (Plotly pads a flat series below zero: ``-1``
    orders, ``-1%`` refunds). Axes holding dates or text, or any other kind of trace, are left alone."""
    values: dict[str, list[Any]] = {}
    for trace in fig.data:
        if trace.type not in _VALUE_TRACES:
            return []
        for letter in ("x", "y"):
            data = getattr(trace, letter)
            if data is None:
                continue
            name = getattr(trace, f"{letter}axis") or letter
            values.setdefault(f"{letter}axis{name[1:]}", []).extend(list(data))
    return [
        axis
        for axis, points in values.items()
        if points
        and all(isinstance(v, Real) and not isinstance(v, bool) for v in points if v is not None)
        and all(v >= 0 for v in points if v is not None and v == v)
        and fig.layout[axis].range is None
    ]


def _axis(fmt: str) -> str:
    """Axis ticks: money as $1.2M / $150k (``$,.0s`` would round 150k to 200k)."""
    return "$.3~s" if fmt.startswith("$") and not fmt.endswith("2f") else fmt


def chart(fig: go.Figure, key: str) -> None:
    """Render a Plotly figure full-width."""
    st.plotly_chart(fig, key=key, config={"displaylogo": False})


def d3(metric_name: str) -> str:
    """The d3 format of a metric."""
    return metrics.metric(metric_name).d3_format


def as_float(value: object, default: float = 0.0) -> float:
    """A Polars aggregate (``Series.max()``, ``.sum()`` …) as a float; ``default`` when it is null."""
    return float(value) if isinstance(value, int | float | Decimal) else default


def money(value: float | Decimal | None, digits: int = 0) -> str:
    """``$1,234`` (or an em dash for missing)."""
    if value is None or value != value:
        return MISSING
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.{digits}f}"


def money_compact(value: float | None) -> str:
    """``$11.37M``, ``$845.2K`` or ``$912`` (for KPI cards, where space is short)."""
    if value is None or value != value:
        return MISSING
    sign, v = ("-" if value < 0 else ""), abs(value)
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if v >= size:
            return f"{sign}${v / size:,.2f}{unit}"
    return f"{sign}${v:,.0f}"


def pct(value: float | None, digits: int = 1) -> str:
    """``12.3%`` (or an em dash for missing)."""
    if value is None or value != value:
        return MISSING
    return f"{value * 100:.{digits}f}%"


def num(value: float | None) -> str:
    """A readable number for labels: ``228,453``, ``13``, ``0.936`` (an em dash for missing)."""
    if value is None or value != value:
        return MISSING
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def strategy_names(user: User) -> dict[str, str]:
    """The strategies' display names ("Live-stream coaching"), by id, from the current build's catalog."""
    catalog = app_data.snapshot("strategy_catalog", user)
    return dict(zip(catalog["strategy"], catalog["name"], strict=True))


VALUE_SEGMENT_LABELS = {
    "top_1pct": "top 1%",
    "top_10pct": "top 10%",
    "core": "core",
    "long_tail": "long tail",
    "inactive": "inactive",
}


def segment_label(segment: str | None) -> str:
    """A value segment as users read it: ``top_1pct`` → ``top 1%`` (`analytics.segments.VALUE_SEGMENTS`)."""
    if segment is None:
        return MISSING
    return VALUE_SEGMENT_LABELS.get(segment, segment.replace("_", " "))


def team_label(team: str) -> str:
    """A team as users read it: ``creator_success`` → ``Creator success``."""
    return team.replace("_", " ").capitalize()


NAME_COLUMNS = {
    "strategy_name": st.column_config.TextColumn("Strategy"),
    "team_name": st.column_config.TextColumn("Team"),
}


def with_names(frame: pl.DataFrame, names: Mapping[str, str]) -> pl.DataFrame:
    """``strategy_name`` and ``team_name`` right after the ``strategy`` and ``team`` ids: grids show the
    names (hide the ids; ``NAME_COLUMNS`` labels them) and exports keep both."""
    teams = {team: team_label(team) for team in frame["team"].unique().to_list()} if "team" in frame else {}
    added = {
        "strategy": pl.col("strategy")
        .replace_strict(dict(names), default=pl.col("strategy"))
        .alias("strategy_name"),
        "team": pl.col("team").replace_strict(teams, return_dtype=pl.String).alias("team_name"),
    }
    columns: list[Any] = []
    for column in frame.columns:
        columns.append(column)
        if column in added:
            columns.append(added[column])
    return frame.select(columns)


def drivers_chart(drivers: pl.DataFrame, title: str, key: str) -> None:
    """One prediction in parts that add up to it, as a waterfall (USD of uplift): the average effect at the
    entity's sales (the SHAP base value), each top driver labelled with the entity's value and its peers'
    median (worded as in the rationale), the other factors, and the expected uplift they sum to. Drivers
    are credited against the average entity, not against the peers (a value at the peers' median says
    so)."""
    parts = drivers.sort("position") if "position" in drivers.columns else drivers
    if "part" not in parts.columns:  # a build from before the base and the rest were published
        parts = parts.with_columns(part=pl.lit("driver"))
    labels, values, measures = [], [], []
    for r in parts.iter_rows(named=True):
        if r["part"] == "base":
            labels.append("Average effect at its sales")
        elif r["part"] == "other":
            labels.append("Other factors")
        else:
            value = format_value(r["feature"], r["value"])
            median = format_value(r["feature"], r["cohort_median"])
            shown = "the median" if value == median else f"median {median}"
            labels.append(f"{feature_label(r['feature'])} = {value} ({shown})")
        values.append(float(r["contribution"]))
        measures.append("absolute" if r["part"] == "base" else "relative")
    if "base" in parts["part"]:
        labels.append("Expected uplift")
        values.append(sum(values))
        measures.append("total")
    fig = go.Figure(
        go.Waterfall(
            x=values,
            y=labels,
            measure=measures,
            orientation="h",
            increasing={"marker": {"color": PALETTE[2]}},
            decreasing={"marker": {"color": PALETTE[4]}},
            totals={"marker": {"color": PALETTE[0]}},
            connector={"line": {"color": "#bbb"}},
            hovertemplate="%{y}: %{x:$,.0f}<extra></extra>",
        )
    )
    fig.update_layout(title=title)
    fig.update_yaxes(autorange="reversed")  # read top-down: from the average to the total
    chart(style(fig, height=110 + 32 * len(labels), x_format="$,.0f", legend=False), key=key)


def recommendation_title(rec: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """A strategy card's title: rank, name, whether it is the entity's best and whether the pilots
    prove its effect (an unproven strategy's figure rests on the model alone), and its team."""
    established = rec.get("established")
    evidence = (
        ""
        if established is None
        else f"  :blue-badge[{EVIDENCE_PROVEN}]"
        if established
        else f"  :orange-badge[{EVIDENCE_UNPROVEN}]"
    )
    return (
        f"**#{rec['rank']} {names.get(rec['strategy'], rec['strategy'])}**"
        + ("  :green-badge[best]" if rec["is_best"] else "")
        + evidence
        + f"  · {team_label(rec['team'])} team"
    )


def recommendation_metric(container: Any, rec: Mapping[str, Any]) -> None:
    """A recommendation's headline: its net value, the figure strategies are ranked by, with the expected
    GMV uplift and the cost it comes from beneath it. No arrow and no colour: a net value is not a change,
    and a negative one must not read as a rise."""
    container.metric(
        "Net value to the platform",
        money(rec["net_value"]),
        delta=f"from {money(rec['expected_uplift'])} expected GMV uplift (80% interval "
        f"{money(rec['uplift_low'])} – {money(rec['uplift_high'])}) and {money(rec['cost'])} cost",
        delta_color="off",
        delta_arrow="off",
        help=NET_VALUE_HELP,
    )


def rationale(rec: Mapping[str, Any]) -> str:
    """The recommendation's rationale, or a plain statement when the run kept none for it."""
    if rec.get("rationale"):
        return str(rec["rationale"])
    return (
        f"Expected {money(rec['expected_uplift'])} incremental GMV over 28 days "
        f"(80% interval {money(rec['uplift_low'])} – {money(rec['uplift_high'])}). Drivers are explained "
        "for each entity's best strategy."
    )


def not_found(what: str) -> None:
    """The one answer for unknown and out-of-scope ids alike."""
    st.warning(f"{what} not found.", icon=":material/search_off:")


def moment(iso: object) -> str:
    """A stored ISO timestamp as people read it, ``2026-12-05 01:43 UTC`` (``—`` when missing or not one)."""
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(str(iso))
    except ValueError:
        return "—"
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return f"{when:%Y-%m-%d %H:%M} UTC"


FUNNEL_INSIDE_SHARE = 0.25
"""A funnel stage's label is drawn inside its bar when the bar is at least this share of the widest."""


def funnel_figure(counts: Mapping[str, float | None], title: str) -> go.Figure:
    """A conversion funnel, one bar per stage in order: each label gives the count and the share of the
    stage before. Later stages are often thousands of times narrower than the first (6.6M impressions,
    5k orders): their labels go beside the bar, where they can be read, instead of inside it."""
    values = [float(v or 0) for v in counts.values()]
    widest = max(values, default=0.0) or 1.0
    positions = ["inside" if v >= FUNNEL_INSIDE_SHARE * widest else "outside" for v in values]
    fig = go.Figure(
        go.Funnel(
            y=[stage.replace("_", " ").capitalize() for stage in counts],
            x=values,
            texttemplate="%{value:,.3~s} · %{percentPrevious:.1%}",
            textposition=positions,
            constraintext="none",
            outsidetextfont={"color": "#31333F"},
            cliponaxis=False,
            hovertemplate="%{y}: %{value:,.0f} (%{percentPrevious:.1%} of the stage before)<extra></extra>",
            marker={"color": PALETTE[: len(values)]},
        )
    )
    fig.update_layout(title=title)
    fig.update_yaxes(automargin=True)
    return fig


def age(seconds: float) -> str:
    """How long ago, as people say it: ``12 s``, ``4 min``, ``3 h 05 min``, ``2 days``."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        hours, rest = divmod(int(seconds), 3600)
        return f"{hours} h {rest // 60:02d} min"
    return f"{seconds / 86400:.0f} days"


def today_value(name: str, value: float | None) -> str:
    """A today figure as its card shows it (GMV compact, as on the period cards)."""
    if value is None:
        return MISSING
    return money_compact(value) if name == "gmv" else metrics.metric(name).display.text(value)


def today_freshness(today: today_kpis.Today, now: datetime) -> str:
    """One line saying how fresh today's figures are: the newest order they include, when the lake run
    they read was committed (and how long ago), and the day the engagement figures are of."""
    window = today.window
    if window is None:
        return "No orders in the lake yet."
    parts = [f"Orders up to {window.now:%d %b %H:%M:%S} UTC"]
    committed = today.lake.finished_at
    if committed is not None:
        parts.append(f"lake updated {committed:%H:%M:%S} UTC ({age((now - committed).total_seconds())} ago)")
    parts.append(f"CTR and CVR: {window.engagement_period()}")
    return " · ".join(parts)


def today_cards(today: today_kpis.Today, now: datetime, what: str) -> None:
    """Today's figures as cards: the value so far, its change against the usual for the same hours of the
    last same weekdays (range and period in the tooltip), and how fresh they are."""
    if today.window is None:
        st.info(
            f"No orders in the lake yet: {what}'s figures for today appear with the first ingest or stream "
            "batch.",
            icon=":material/schedule:",
        )
        return
    if today.window.sale_day:
        st.caption(
            "Today is a mega-sale day: the usual range is that of normal same weekdays, so expect to be far "
            "above it."
        )
    rows = list(today.figures.iter_rows(named=True))
    for column, row in zip(st.columns(len(rows)), rows, strict=True):
        name, change = row["metric"], row["change_pct"]
        if row["usual"] is None:
            usual = (
                f"No usual range: fewer than {today_kpis.MIN_REFERENCES} earlier same weekdays in the data."
            )
        else:
            low, high = today_value(name, row["usual_low"]), today_value(name, row["usual_high"])
            usual = (
                f"Usual: {today_value(name, row['usual'])} (median of {row['references']} earlier same "
                f"weekdays, range {low} – {high})."
            )
        column.metric(
            row["label"],
            today_value(name, row["value"]),
            delta=None if change is None else f"{change * 100:+.1f}%",
            delta_color="normal" if row["higher_is_better"] else "inverse",
            help=f"{row['definition']} Period: {row['period']}. {usual}",
            border=True,
        )
    st.caption(
        f"Change against the usual for these hours: the median of the last {today_kpis.REFERENCE_WEEKS} same "
        f"weekdays (hover a card for the range). {today_freshness(today, now)}"
    )


def today_section(
    user: User, what: str, *, creator_id: str | None = None, merchant_id: str | None = None
) -> None:
    """The "today so far" cards of the marketplace, a creator or a merchant, in a fragment that looks for a
    new lake commit every ``live_refresh_s`` seconds (a stream micro-batch shows without a page reload)."""

    @st.fragment(run_every=app_data.settings().live_refresh_s)
    def live() -> None:
        result = app_data.today(user, creator_id=creator_id, merchant_id=merchant_id)
        today_cards(result, datetime.now(UTC), what)

    live()
