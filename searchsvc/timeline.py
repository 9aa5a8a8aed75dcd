"""The result timeline: facet counts laid out as bars of a small inline SVG chart.

Geometry is computed here so the template only prints numbers (no inline styles: the page's CSP
allows stylesheets from 'self' only, so colours live in CSS classes). Years are shown unless the
matches span under two years, then months, so a click on a year bar drills down to its months.
Empty periods between the first and the last one get a zero bar: gaps are part of the story.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from index.api import FacetValue

WIDTH = 320
HEIGHT = 96
LABEL_SPACE = 16  # room under the bars for the first/last period labels
GAP = 2
MIN_BAR = 2  # a non-empty period is always visible


@dataclass(slots=True, frozen=True)
class Bar:
    label: str  # "2014" or "06/2014"
    count: int
    date_from: date
    date_to: date
    x: float
    y: float
    width: float
    height: float


@dataclass(slots=True, frozen=True)
class Timeline:
    unit: str  # "year" or "month"
    bars: list[Bar]
    width: int = WIDTH
    height: int = HEIGHT
    baseline: int = HEIGHT - LABEL_SPACE

    @property
    def first(self) -> Bar:
        return self.bars[0]

    @property
    def last(self) -> Bar:
        return self.bars[-1]


def _years(values: Sequence[FacetValue]) -> dict[int, int]:
    out: dict[int, int] = {}
    for v in values:
        if v.count > 0 and v.value[:4].isdigit():
            out[int(v.value[:4])] = out.get(int(v.value[:4]), 0) + v.count
    return out


def _months(values: Sequence[FacetValue]) -> dict[tuple[int, int], int]:
    out: dict[tuple[int, int], int] = {}
    for v in values:
        year, _, month = v.value.partition("-")
        if v.count > 0 and year.isdigit() and month.isdigit() and 1 <= int(month) <= 12:
            key = (int(year), int(month))
            out[key] = out.get(key, 0) + v.count
    return out


def build_timeline(facets: dict[str, list[FacetValue]]) -> Timeline | None:
    """Bars for the whole match set, or None when there is nothing to draw."""
    years = _years(facets.get("year", []))
    months = _months(facets.get("month", []))
    periods: list[tuple[str, int, date, date]] = []
    if months:
        first, last = min(months), max(months)
        span = (last[0] - first[0]) * 12 + last[1] - first[1] + 1
        if span < 24 or not years:
            y, m = first
            while (y, m) <= last:
                end = date(y, m, calendar.monthrange(y, m)[1])
                periods.append((f"{m:02d}/{y}", months.get((y, m), 0), date(y, m, 1), end))
                y, m = (y + 1, 1) if m == 12 else (y, m + 1)
            return _layout("month", periods)
    if not years:
        return None
    for y in range(min(years), max(years) + 1):
        periods.append((str(y), years.get(y, 0), date(y, 1, 1), date(y, 12, 31)))
    return _layout("year", periods)


def _layout(unit: str, periods: list[tuple[str, int, date, date]]) -> Timeline:
    top = max(count for _, count, _, _ in periods) or 1
    baseline = HEIGHT - LABEL_SPACE
    slot = WIDTH / len(periods)
    width = max(slot - GAP, 1.0)
    bars = []
    for i, (label, count, start, end) in enumerate(periods):
        height = 0.0 if count == 0 else max(MIN_BAR, (baseline - 4) * count / top)
        bars.append(
            Bar(
                label=label,
                count=count,
                date_from=start,
                date_to=end,
                x=round(i * slot + GAP / 2, 2),
                y=round(baseline - height, 2),
                width=round(width, 2),
                height=round(height, 2),
            )
        )
    return Timeline(unit=unit, bars=bars)
