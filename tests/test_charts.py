"""The dashboard's SVG charts: the y-axis labels fit inside the chart whatever their width."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from alerts.reports import charts

DAYS = [date(2026, 11, 1) + timedelta(days=i) for i in range(30)]
# Largest values whose axis tops have labels of every width, "5" to "10,000,000".
PEAKS = [3, 40, 700, 4_000, 10_000, 90_000, 600_000, 10_000_000]
STATIC = Path(__file__).resolve().parent.parent / "static"


def _top_label_x(svg: str) -> float:
    tick = re.search(r'<text class="tick" x="([\d.]+)" y="\d+" text-anchor="end">[\d,]+</text>', svg)
    return float(tick[1])


@pytest.mark.parametrize("peak", PEAKS)
def test_the_plot_leaves_room_for_the_top_label(peak):
    svg = str(charts.bars(DAYS, [peak] * len(DAYS), "Confirmations"))
    top = re.search(r'text-anchor="end">([\d,]+)</text>', svg)[1]
    # The label ends TICK_GAP left of the plot and starts at or right of the chart's edge.
    assert _top_label_x(svg) - charts.label_width(top) >= 0, (top, svg[:400])
    first_bar = float(re.search(r'<rect class="bar" x="([\d.]+)"', svg)[1])
    assert first_bar > _top_label_x(svg)


def test_wider_labels_move_the_plot_right():
    pads = [charts.pad_left(charts._nice_max(p)) for p in PEAKS]
    assert pads == sorted(pads) and pads[-1] > pads[0]


@pytest.mark.slow
def test_axis_labels_are_inside_the_chart_in_a_browser(browser_page, shots):
    """As Chromium lays them out with the pages' CSS: every label's box inside its SVG's box."""
    css = (STATIC / "site.css").read_text() + (STATIC / "reports.css").read_text()
    figures = "".join(
        f'<div class="box chart-box">{charts.bars(DAYS, [peak // 2] * 29 + [peak], f"Peak {peak}")}'
        f'{charts.line(DAYS, [peak] * 30, f"Line {peak}")}</div>' for peak in PEAKS)
    page = browser_page
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.set_content(f"<!doctype html><html><head><style>{css}</style></head><body>"
                         f'<main class="staff"><section class="charts">{figures}</section></main>')
        outside = page.evaluate("""() => [...document.querySelectorAll('svg.chart')].flatMap(svg => {
            const box = svg.getBoundingClientRect();
            return [...svg.querySelectorAll('text')].map(t => [t.textContent, t.getBoundingClientRect()])
              .filter(([, r]) => r.left < box.left - 0.5 || r.right > box.right + 0.5
                                 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)
              .map(([text, r]) => `${svg.getAttribute('aria-label')}: "${text}" at ${r.left}..${r.right}`
                                  + ` in ${box.left}..${box.right}`);
        })""")
        page.screenshot(path=str(shots / f"charts-{width}.png"), full_page=True)
        assert not outside, f"at {width} px:\n" + "\n".join(outside)
