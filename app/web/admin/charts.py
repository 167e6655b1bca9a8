"""Charts drawn on the server as SVG (the console's dashboard): no script, no CDN, no inline
style (our CSP), only SVG presentation attributes. Each chart is an image with a title and a
description for screen readers (role="img"); the page shows its numbers as a table too."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from app.i18n import _

# Colours that stay apart for most colour vision (Okabe-Ito), then again.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442",
           "#000000")
WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 12, 28
LEGEND_ROW = 18


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def stacked_bars(chart_id: str, title: str, labels: Sequence[str],
                 series: Sequence[tuple[str, Sequence[int]]], *, label_every: int = 3) -> Markup:
    """A stacked bar chart: one bar per label, one coloured part per series (name, counts),
    a y axis from 0 to the largest bar, every `label_every`-th label under the x axis, and a
    legend below."""
    totals = [sum(counts[i] for _name, counts in series) for i in range(len(labels))]
    top = max(totals, default=0) or 1
    legend_rows = (len(series) + 2) // 3
    height = HEIGHT + legend_rows * LEGEND_ROW
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(labels), 1)
    bar = slot * 0.8
    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(_describe(labels, totals))}</desc>',
        _axes(top, plot_w, plot_h),
    ]
    for i, label in enumerate(labels):
        x = LEFT + i * slot + (slot - bar) / 2
        y = TOP + plot_h
        for index, (name, counts) in enumerate(series):
            if not counts[i]:
                continue
            h = plot_h * counts[i] / top
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{colour(index)}"><title>{escape(label)}: {escape(name)} '
                         f'{counts[i]}</title></rect>')
        if (len(labels) - 1 - i) % label_every == 0:  # the current hour (last) is labelled
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{TOP + plot_h + 16}" font-size="11" '
                         f'text-anchor="middle" fill="#444">{escape(label)}</text>')
    parts.append(_legend(series, HEIGHT))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()


def _axes(top: int, plot_w: float, plot_h: float) -> str:
    base = TOP + plot_h
    return (f'<line x1="{LEFT}" y1="{base}" x2="{LEFT + plot_w}" y2="{base}" stroke="#888"/>'
            f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="#888"/>'
            f'<text x="{LEFT - 6}" y="{base}" font-size="11" text-anchor="end" '
            f'fill="#444">0</text>'
            f'<text x="{LEFT - 6}" y="{TOP + 10}" font-size="11" text-anchor="end" '
            f'fill="#444">{top}</text>')


def _legend(series: Sequence[tuple[str, Sequence[int]]], y0: int) -> str:
    parts = []
    for index, (name, _counts) in enumerate(series):
        x = LEFT + (index % 3) * 220
        y = y0 + (index // 3) * LEGEND_ROW
        parts.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{colour(index)}"/>'
                     f'<text x="{x + 18}" y="{y + 11}" font-size="12" fill="#222">'
                     f'{escape(name)}</text>')
    return "".join(parts)


def _describe(labels: Sequence[str], totals: Sequence[int]) -> str:
    if not labels:
        return _("No data.")
    peak = max(range(len(totals)), key=lambda i: totals[i])
    return _("%(total)s in all from %(first)s to %(last)s; the most, %(most)s, at %(peak)s.",
             total=sum(totals), first=labels[0], last=labels[-1], most=totals[peak],
             peak=labels[peak])
