"""The marketplace's calendar: the mega-sale days the product knows about.

Mega-sale days (6.18, 9.9, 10.10, 11.11) change traffic and conversion for the whole day, so anything
that compares a day with earlier days (the alert baselines) treats them apart. They are declared here,
once: the simulator plants its sale-day effects on these days and the product reads them from here.
"""

from __future__ import annotations

from datetime import date

MEGA_SALE_DAYS: tuple[date, ...] = (
    date(2026, 6, 18),
    date(2026, 9, 9),
    date(2026, 10, 10),
    date(2026, 11, 11),
)


def is_mega_sale_day(day: date) -> bool:
    """Whether ``day`` is a declared mega-sale day."""
    return day in MEGA_SALE_DAYS
