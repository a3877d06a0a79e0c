"""How features and their values read in explanations: the one rule the rationales (strategies.explain)
and the pages' driver charts share. Plain Python and regular expressions only, so pages can import it
without pulling in the models."""

from __future__ import annotations

import re

import numpy as np
import polars as pl

_ABBREVIATIONS = {"gmv": "GMV", "ctr": "CTR", "cvr": "CVR", "gpm": "GPM", "aov": "AOV", "id": "ID"}


def feature_label(name: str) -> str:
    """A readable label for a feature column: ``gmv_28d`` → "GMV 28d"."""
    words = [_ABBREVIATIONS.get(w, w) for w in name.split("_")]
    return " ".join(words)


def format_value(name: str, value: float | str | None) -> str:
    """Format a feature value by what its name says it is (ratio, rate/share, money, count): by the name
    only, so an entity's value and its cohort's median always read alike."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if isinstance(value, str):
        return value
    if "=" in name:
        return "yes" if value >= 0.5 else "no"
    if name.endswith(("_index_vs_category", "_ratio_vs_category")):
        return f"{value:.2f}×"
    if "_gap_vs_" in name:  # a difference of two rates
        return f"{value * 100:+.1f} pts"
    if "trend" in name:
        return f"{value:+.0%}"
    if re.search(r"(rate|share|ctr|cvr|_pct)", name):  # before money: "gmv share" is a share
        return f"{value:.1%}"
    if re.search(r"(gmv|gpm|aov|price|commission$|commission_earned|revenue|cost)", name):
        return f"${value:,.0f}" if abs(value) >= 10 else f"${value:,.2f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


NET_VALUE_HELP = (
    "Net value to the platform: what it keeps of the expected 28-day GMV uplift (the uplift times its take "
    "rate, the catalog's commission rate) minus the strategy's cost. Strategies are ranked by it."
)
"""What "net value" means, in words: the pages' tooltips and the reports' notes say it the same way."""


EVIDENCE_PROVEN = "proven"
EVIDENCE_UNPROVEN = "unproven: pilot proposed"
EVIDENCE_HELP = (
    "Whether the randomized pilots establish the sign of the strategy's effect (its 95% interval excludes "
    "zero). An unproven strategy's figure rests on the model alone; `liftboard pilot` and the Strategy "
    "board's 'Pilots to run' propose the pilot that would settle it."
)


def evidence_label(established: pl.Expr) -> pl.Expr:
    """'proven' / 'unproven: pilot proposed' (null where a build predates the flag): one wording for the
    board, the strategy cards and the reports."""
    return (
        pl.when(established)
        .then(pl.lit(EVIDENCE_PROVEN))
        .when(established.is_not_null())
        .then(pl.lit(EVIDENCE_UNPROVEN))
        .otherwise(pl.lit(None, pl.String))
    )
