"""Static chart images (PNG, matplotlib) for the PDF and the slides; Plotly figures for the HTML report.

Both draw the same `reports.model.Chart`: side-by-side panels of series over a categorical x axis.
"""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from reports.model import Chart, format_of  # noqa: E402

PALETTE = ("#2563eb", "#f97316", "#16a34a", "#9333ea", "#64748b", "#dc2626")
AVERAGE_COLOR = "#111827"


def compact(value: float, key: str) -> str:
    """A short axis label: ``$2.7M``, ``52k``, ``3.2%``."""
    kind = format_of(key).kind
    if kind in ("ratio", "pct_change"):
        return f"{value:.0%}" if abs(value) >= 0.1 else f"{value:.1%}"
    prefix = "$" if kind in ("usd", "usd2") else ""
    sign = "-" if value < 0 else ""
    number = abs(value)
    for threshold, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if number >= threshold:
            return f"{sign}{prefix}{number / threshold:.1f}{suffix}"
    if kind == "usd2" or (kind == "number" and number < 10):
        return f"{sign}{prefix}{number:.2f}"
    return f"{sign}{prefix}{number:,.0f}"


def chart_png(
    chart: Chart, width: float = 7.0, height: float = 2.6, dpi: int = 130, scale: float = 1.0
) -> bytes:
    """``chart`` drawn as a PNG of ``width`` × ``height`` inches; ``scale`` enlarges every font."""
    panels = chart.panels or [""]
    with plt.rc_context(
        {
            "font.size": 8 * scale,
            "axes.titlesize": 9 * scale,
            "axes.labelsize": 8 * scale,
            "xtick.labelsize": 7 * scale,
            "ytick.labelsize": 7 * scale,
            "legend.fontsize": 7 * scale,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    ):
        fig, axes = plt.subplots(1, len(panels), figsize=(width, height), dpi=dpi, squeeze=False)
        formatter = FuncFormatter(lambda value, _pos: compact(value, chart.y_format))
        for ax, panel in zip(axes[0], panels, strict=True):
            _draw_panel(ax, chart, panel, scale)
            ax.yaxis.set_major_formatter(formatter)
            ax.grid(axis="y", color="#e5e7eb", linewidth=0.6)
            ax.set_axisbelow(True)
            ax.set_title(panel, loc="left", color="#374151")
        fig.suptitle(chart.title, x=0.01, ha="left", fontsize=10 * scale, fontweight="bold")
        fig.tight_layout()
        if any([_fit_tick_labels(fig, ax) for ax in axes[0]]):
            fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
    return buffer.getvalue()


def _fit_tick_labels(fig: Any, ax: Any) -> bool:
    """Rotate the x tick labels of ``ax`` by the least of 0°, 35° and 90° at which neighbours do not
    overlap, measured on the drawn layout: upright labels need the tick spacing to exceed the widest
    label; labels rotated by θ clear each other once the spacing times sin θ exceeds their height.
    Returns whether it rotated them."""
    labels = [label for label in ax.get_xticklabels() if label.get_text()]
    if len(labels) < 2:
        return False
    renderer = fig.canvas.get_renderer()
    boxes = [label.get_window_extent(renderer) for label in labels]
    ticks = sorted(ax.transData.transform([(x, 0) for x in ax.get_xticks()])[:, 0])
    spacing = min(b - a for a, b in zip(ticks, ticks[1:], strict=False))
    if spacing > 1.1 * max(box.width for box in boxes):
        return False
    angle = 35 if spacing * math.sin(math.radians(35)) > 1.2 * max(box.height for box in boxes) else 90
    for label in labels:
        label.set_rotation(angle)
        label.set_horizontalalignment("right" if angle == 35 else "center")
    return True


def _draw_panel(ax: Any, chart: Chart, panel: str, scale: float) -> None:
    data = chart.frame.filter(chart.frame["panel"] == panel) if chart.frame.height else chart.frame
    if data.height == 0:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="#6b7280")
        ax.set_xticks([])
        return
    xs = list(dict.fromkeys(data["x"].to_list()))
    position = {x: i for i, x in enumerate(xs)}
    series = list(dict.fromkeys(data["series"].to_list()))
    if chart.kind == "bar":
        width = 0.8 / len(series)
        for k, name in enumerate(series):
            part = data.filter(data["series"] == name)
            pos = [position[x] - 0.4 + width * (k + 0.5) for x in part["x"].to_list()]
            values = [v if v is not None else 0.0 for v in part["y"].to_list()]
            if len(series) == 1:
                colors = ["#16a34a" if v >= 0 else "#dc2626" for v in values]
                ax.bar(pos, values, width=width, color=colors)
            else:
                ax.bar(pos, values, width=width, color=PALETTE[k % len(PALETTE)], label=name)
        ax.axhline(0, color="#9ca3af", linewidth=0.8)
    else:
        for k, name in enumerate(series):
            part = data.filter(data["series"] == name)
            pos = [position[x] for x in part["x"].to_list()]
            is_average = name == "average"
            ax.plot(
                pos,
                part["y"].to_list(),
                marker="o",
                markersize=3 * scale,
                linewidth=(2.2 if is_average else 1.6) * scale,
                linestyle="--" if is_average else "-",
                color=AVERAGE_COLOR if is_average else PALETTE[k % len(PALETTE)],
                label=name,
            )
        ax.margins(y=0.15)
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels(xs)  # rotated by `_fit_tick_labels` once the layout is known
    if len(series) > 1:
        # beside the plot, never over its lines (tight_layout makes room for it)
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def plotly_figure(chart: Chart) -> Any:
    """``chart`` as an interactive Plotly figure (one subplot per panel)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = chart.panels or [""]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=panels, horizontal_spacing=0.16)
    d3 = format_of(chart.y_format).d3 or ",.2f"
    shown: set[str] = set()
    for column, panel in enumerate(panels, start=1):
        data = chart.frame.filter(chart.frame["panel"] == panel) if chart.frame.height else chart.frame
        for k, name in enumerate(dict.fromkeys(data["series"].to_list())):
            part = data.filter(data["series"] == name)
            color = AVERAGE_COLOR if name == "average" else PALETTE[k % len(PALETTE)]
            common: dict[str, Any] = {
                "x": part["x"].to_list(),
                "y": part["y"].to_list(),
                "name": name,
                "legendgroup": name,
                "showlegend": name not in shown and len(set(data["series"].to_list())) > 1,
                "hovertemplate": f"%{{x}}<br>{name}: %{{y:{d3}}}<extra></extra>",
            }
            shown.add(name)
            if chart.kind == "bar":
                values = [v or 0.0 for v in part["y"].to_list()]
                marker = (
                    {"color": ["#16a34a" if v >= 0 else "#dc2626" for v in values]}
                    if len(set(data["series"].to_list())) == 1
                    else {"color": color}
                )
                fig.add_trace(go.Bar(marker=marker, **common), row=1, col=column)
            else:
                fig.add_trace(
                    go.Scatter(
                        mode="lines+markers",
                        line={"color": color, "dash": "dash" if name == "average" else "solid"},
                        **common,
                    ),
                    row=1,
                    col=column,
                )
        fig.update_yaxes(tickformat=d3, row=1, col=column)
        fig.update_xaxes(type="category", row=1, col=column)
    fig.update_layout(
        title={"text": chart.title, "x": 0.01},
        height=340,
        margin={"l": 50, "r": 20, "t": 70, "b": 60},
        template="plotly_white",
        barmode="group",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
