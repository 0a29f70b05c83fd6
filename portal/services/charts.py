"""Small server-side SVG charts: no JavaScript, no CDN, readable without a browser plug-in.

``bar_chart`` draws grouped bars: one group per category (a day), one bar per series in
it, with a value axis (0, half, max), a category axis, axis labels, a legend, and a
``<title>`` on every bar (the browser shows it on hover; screen readers read it).  The
caller formats values (``fmt``: e.g. ``portal.formatting.money``) and translates every
label; this module only lays out and escapes.  Pages put an accessible table of the same
figures under each chart.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Sequence

from markupsafe import Markup, escape

__all__ = ["Series", "bar_chart", "PALETTE"]

#: Colour-blind friendly (Okabe–Ito), in series order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")

Number = Decimal | int


@dataclass(frozen=True)
class Series:
    label: str
    #: One value per category, in the categories' order.
    values: Sequence[Number]


def _num(value: float) -> str:
    """A coordinate: two decimals at most, no trailing zeros (keeps the SVG small)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def bar_chart(categories: Sequence[str], series: Sequence[Series], *, title: str, x_label: str, y_label: str,
              fmt: Callable[[Number], str] = str, width: int = 720, height: int = 260,
              max_x_labels: int = 12) -> Markup:
    """An SVG bar chart (``Markup``: every text in it is escaped here).

    ``width`` and ``height`` are the drawing's units (its ``viewBox``): the SVG itself has no
    pixel size and takes its container's width, keeping these proportions.
    Values may be negative (bars then hang below the zero line); an all-zero chart draws
    zero-height bars, so every category still has its hoverable bar per series.
    """
    for s in series:
        if len(s.values) != len(categories):
            raise ValueError(f"series {s.label!r} has {len(s.values)} values for {len(categories)} categories")
    left, right, top, bottom = 72, 12, 28 + (18 if len(series) > 1 else 0), 44
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for s in series for v in s.values]
    high = max([Decimal(0), *map(Decimal, values)])
    low = min([Decimal(0), *map(Decimal, values)])
    span = (high - low) or Decimal(1)

    def y(value: Number) -> float:
        return top + float((high - Decimal(value)) / span) * plot_h

    n = max(len(categories), 1)
    group_w = plot_w / n
    bar_w = max(group_w * 0.8 / max(len(series), 1), 0.5)
    zero_y = y(0)
    # no fixed size: the viewBox keeps the proportions, the chart takes its container's width
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="100%" '
           f'style="max-width:100%;height:auto;display:block" preserveAspectRatio="xMidYMid meet" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f"<title>{escape(title)}</title>"]
    # value axis: gridlines and ticks at low, 0, half of the high and the high
    ticks = sorted({low, Decimal(0), high / 2 if high else Decimal(0), high})
    out.append('<g class="y-axis">')
    for tick in ticks:
        ty = _num(y(tick))
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{ty}" y2="{ty}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 4}" y="{ty}" text-anchor="end" dominant-baseline="middle">'
                   f"{escape(fmt(tick))}</text>")
    out.append("</g>")
    out.append(f'<line class="x-axis" x1="{left}" x2="{left + plot_w}" y1="{_num(zero_y)}" y2="{_num(zero_y)}" '
               f'stroke="#333"/>')
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#333"/>')
    # bars, one group per series
    for index, s in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        out.append(f'<g class="series" data-series="{escape(s.label)}" fill="{colour}">')
        for position, (category, value) in enumerate(zip(categories, s.values)):
            x = left + position * group_w + group_w * 0.1 + index * bar_w
            y_top, y_bottom = sorted((y(value), zero_y))
            label = f"{category} — {s.label}: {fmt(value)}"
            out.append(f'<rect class="bar" x="{_num(x)}" y="{_num(y_top)}" width="{_num(bar_w)}" '
                       f'height="{_num(y_bottom - y_top)}"><title>{escape(label)}</title></rect>')
        out.append("</g>")
    # category labels: at most max_x_labels of them, evenly spaced
    step = max(1, -(-len(categories) // max_x_labels))
    out.append('<g class="x-labels" text-anchor="middle">')
    for position in range(0, len(categories), step):
        cx = left + (position + 0.5) * group_w
        out.append(f'<text x="{_num(cx)}" y="{top + plot_h + 14}">{escape(categories[position])}</text>')
    out.append("</g>")
    # axis labels
    out.append(f'<text class="axis-label" x="{_num(left + plot_w / 2)}" y="{height - 6}" '
               f'text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text class="axis-label" x="12" y="{_num(top + plot_h / 2)}" text-anchor="middle" '
               f'transform="rotate(-90 12 {_num(top + plot_h / 2)})">{escape(y_label)}</text>')
    # legend (only when there is more than one series)
    if len(series) > 1:
        out.append('<g class="legend">')
        x = left
        for index, s in enumerate(series):
            out.append(f'<rect x="{x}" y="6" width="10" height="10" fill="{PALETTE[index % len(PALETTE)]}"/>')
            out.append(f'<text x="{x + 14}" y="15">{escape(s.label)}</text>')
            x += 24 + 7 * len(s.label)
        out.append("</g>")
    out.append("</svg>")
    return Markup("".join(out))
