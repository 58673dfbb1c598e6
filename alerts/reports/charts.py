"""Charts drawn on the server as SVG: no script, no library, readable at a phone's width.

Small view boxes (360 units wide) so that text stays legible when the chart is scaled to a
phone's column; every bar has a <title> (a tooltip) and every chart an accessible name and a
one-line summary, so the figures can be read without the picture.
"""

from __future__ import annotations

from datetime import date

from markupsafe import Markup, escape

W, H = 360, 150
PAD_R, PAD_T, PAD_B = 8, 10, 22
# The y-axis labels (static/reports.css: .chart .tick, 11px, 12px on a phone) are right-aligned
# TICK_GAP units left of the plot; the plot starts where the widest label, measured at the
# larger size and generously, still fits.
TICK_FONT = 12
TICK_GAP = 4
_CHAR_EM = {",": 0.34, ".": 0.34}  # a digit is at most 0.62 em in the fonts the pages use
DIGIT_EM = 0.62
MIN_PAD_L = 24


def _nice_max(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at least the largest value."""
    if value <= 5:
        return 5
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def _fmt(n: int) -> str:
    return f"{n:,}"


def label_width(text: str) -> float:
    """The most room a y-axis label takes at TICK_FONT (in view box units)."""
    return TICK_FONT * sum(_CHAR_EM.get(ch, DIGIT_EM) for ch in text)


def pad_left(top: int) -> float:
    """The plot's left edge: the top label (the widest) fits to its left, whatever its width."""
    return max(MIN_PAD_L, round(label_width(_fmt(top)) + TICK_GAP + 2, 1))


def _day_label(d: date) -> str:
    return f"{d.day} {d:%b}"


def _frame(label: str, top: int, days: list[date], body: list[str]) -> Markup:
    pad_l = pad_left(top)
    plot_w = W - pad_l - PAD_R
    ticks = [0, len(days) // 2, len(days) - 1] if days else []
    parts = [
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(label)}" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
        f'<line class="axis" x1="{pad_l}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}"/>',
        f'<line class="grid" x1="{pad_l}" y1="{PAD_T}" x2="{W - PAD_R}" y2="{PAD_T}"/>',
        f'<text class="tick" x="{pad_l - TICK_GAP}" y="{PAD_T + 4}" text-anchor="end">{_fmt(top)}</text>',
        f'<text class="tick" x="{pad_l - TICK_GAP}" y="{H - PAD_B}" text-anchor="end">0</text>',
    ]
    for i in ticks:
        x = pad_l + plot_w * (i + 0.5) / len(days)
        anchor = "start" if i == 0 else "end" if i == len(days) - 1 else "middle"
        if i == 0:
            x = pad_l
        elif i == len(days) - 1:
            x = W - PAD_R
        parts.append(f'<text class="tick" x="{x:.1f}" y="{H - 6}" text-anchor="{anchor}">'
                     f"{_day_label(days[i])}</text>")
    # numbers, dates and escaped labels only
    return Markup("".join(parts + body + ["</svg>"]))  # nosec B704


def bars(days: list[date], values: list[int], label: str, unit: str = "") -> Markup:
    """One bar per day."""
    top = _nice_max(max(values, default=0))
    pad_l = pad_left(top)
    plot_w, plot_h = W - pad_l - PAD_R, H - PAD_T - PAD_B
    slot = plot_w / max(len(days), 1)
    body = []
    for i, (d, v) in enumerate(zip(days, values, strict=True)):
        h = plot_h * v / top
        x = pad_l + i * slot + slot * 0.15
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{H - PAD_B - h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}"><title>{_day_label(d)}: {_fmt(v)}{escape(unit)}</title></rect>'
        )
    return _frame(label, top, days, body)


def line(days: list[date], values: list[int], label: str) -> Markup:
    """A line over the days, with its area shaded; the axis starts at zero."""
    top = _nice_max(max(values, default=0))
    pad_l = pad_left(top)
    plot_w, plot_h = W - pad_l - PAD_R, H - PAD_T - PAD_B
    slot = plot_w / max(len(days), 1)
    points = [(pad_l + slot * (i + 0.5), H - PAD_B - plot_h * v / top) for i, v in enumerate(values)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    body = []
    if points:
        area = f"{points[0][0]:.1f},{H - PAD_B} {path} {points[-1][0]:.1f},{H - PAD_B}"
        body.append(f'<polygon class="area" points="{area}"/>')
        body.append(f'<polyline class="line" points="{path}"/>')
        for (x, y), d, v in zip(points, days, values, strict=True):
            body.append(f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="2.5">'
                        f"<title>{_day_label(d)}: {_fmt(v)}</title></circle>")
    return _frame(label, top, days, body)


def spark(days: list[date], values: list[int], label: str) -> Markup:
    """A small bar strip for one of several series (small multiples share no axis)."""
    w, h = 180, 28
    top = max(max(values, default=0), 1)
    slot = w / max(len(days), 1)
    body = [f'<svg class="spark" viewBox="0 0 {w} {h}" role="img" aria-label="{escape(label)}" '
            f'preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>',
            f'<line class="axis" x1="0" y1="{h - 0.5}" x2="{w}" y2="{h - 0.5}"/>']
    for i, (d, v) in enumerate(zip(days, values, strict=True)):
        bh = (h - 2) * v / top
        body.append(f'<rect class="bar" x="{i * slot + slot * 0.1:.1f}" y="{h - bh:.1f}" '
                    f'width="{slot * 0.8:.1f}" height="{bh:.1f}"><title>{_day_label(d)}: {v}</title></rect>')
    body.append("</svg>")
    # numbers, dates and escaped labels only
    return Markup("".join(body))  # nosec B704


FUNNEL_ROWS = (("sent", "Sent"), ("clicked", "Clicked"), ("signed", "Signed"),
               ("unsubscribed", "Unsubscribed"))


def funnel(steps: list[tuple[str, dict[str, int]]], label: str) -> Markup:
    """A journey's steps one under another, each with its bars (sent, clicked, signed,
    unsubscribed) on one scale: the largest step's sent, so a step that loses people shows it."""
    top = max([f["sent"] for _, f in steps] + [1])
    label_w, value_w, bar_h, gap = 92, 56, 11, 4
    block = 18 + len(FUNNEL_ROWS) * (bar_h + gap) + 8
    height = block * len(steps)
    plot_w = W - label_w - value_w
    parts = [
        f'<svg class="chart funnel-chart" viewBox="0 0 {W} {height}" role="img" aria-label="{escape(label)}" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
    ]
    for i, (name, figures) in enumerate(steps):
        y = i * block
        short = name if len(name) <= 52 else name[:51] + "…"
        parts.append(f'<text class="funnel-step" x="0" y="{y + 13}">{escape(short)}</text>')
        for j, (key, text) in enumerate(FUNNEL_ROWS):
            value = figures.get(key, 0)
            by = y + 18 + j * (bar_h + gap)
            w = plot_w * value / top
            parts.append(f'<text class="tick" x="{label_w - TICK_GAP}" y="{by + bar_h - 1}" '
                         f'text-anchor="end">{text}</text>')
            tip = f"{escape(short)}: {_fmt(value)} {text.lower()}"
            parts.append(f'<rect class="bar bar-{key}" x="{label_w}" y="{by}" width="{max(w, 0.5):.1f}" '
                         f'height="{bar_h}"><title>{tip}</title></rect>')
            parts.append(f'<text class="tick" x="{label_w + w + TICK_GAP:.1f}" y="{by + bar_h - 1}">'
                         f"{_fmt(value)}</text>")
    return Markup("".join(parts + ["</svg>"]))  # nosec B704 - numbers and escaped labels only
