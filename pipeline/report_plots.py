"""Matplotlib plots for the run report, rendered as inline SVG strings.

Every public helper takes plain data from ``report.json`` and returns either an ``<svg>`` element (no XML
prolog, ids prefixed so several plots can share one HTML page) or ``None`` when there is nothing to plot;
the caller shows empty-state text instead. Figures are built with :class:`matplotlib.figure.Figure` and
the SVG canvas directly, so no global pyplot state is touched, and rendering is deterministic.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Sequence
from typing import Any

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter
from matplotlib.typing import RcKeyType

_RC: dict[RcKeyType, Any] = {  # matplotlib types rc keys as a Literal of the known names
    "svg.hashsalt": "songcorpus",
    "svg.fonttype": "none",
    "text.parse_math": False,  # reason names with "$" must stay literal text
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
# Drop the RDF metadata block entirely: no render date and no external URLs in the SVG.
_METADATA: dict[str, Any] = {"Date": None, "Creator": None, "Format": None, "Type": None}
_WALL, _BUSY, _BAR = "#4c72b0", "#dd8452", "#55a868"
_LABEL_MAX = 36


def _short(text: str, limit: int = _LABEL_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return 0.0
    return out if math.isfinite(out) else 0.0


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _to_svg(fig: Figure, prefix: str) -> str:
    FigureCanvasSVG(fig)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata=_METADATA)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    # Make ids unique per plot: definitions and their references (url(#x), href="#x").
    return re.sub(r'(\bid="|url\(#|href="#)([^")]+)', lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", svg)


def _figure(rows: int, base: float = 1.6, per_row: float = 0.38) -> Figure:
    # Fixed width and constrained layout: long labels shrink the axes, not the whole plot on the page.
    return Figure(figsize=(7.5, max(3.6, base + per_row * rows)), dpi=100, layout="constrained")


def durations_svg(
    edges: Sequence[float],
    counts: Sequence[float],
    title: str = "Song durations",
    xlabel: str = "duration (seconds)",
    ylabel: str = "songs",
    prefix: str = "dur",
) -> str | None:
    """Histogram (song durations by default) from precomputed bin edges and counts."""
    if len(edges) != len(counts) + 1 or not counts or sum(_num(c) for c in counts) <= 0:
        return None
    with matplotlib.rc_context(_RC):
        fig = _figure(0)
        ax = fig.add_subplot()
        lefts = [_num(e) for e in edges[:-1]]
        widths = [_num(b) - _num(a) for a, b in itertools.pairwise(edges)]
        ax.bar(lefts, [_num(c) for c in counts], width=widths, align="edge", color=_WALL, edgecolor="white")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="x", visible=False)
        return _to_svg(fig, prefix)


def rejects_svg(stages: Sequence[dict[str, Any]]) -> str | None:
    """Horizontal bars, one row per reject reason, stacked by the stage that rejected."""
    stage_names = [str(s.get("name", "?")) for s in stages]
    per_stage = [{str(r): _num(n) for r, n in (s.get("reasons") or {}).items()} for s in stages]
    totals: dict[str, float] = {}
    for reasons in per_stage:
        for reason, n in reasons.items():
            totals[reason] = totals.get(reason, 0.0) + n
    reasons_sorted = sorted((r for r, n in totals.items() if n > 0), key=lambda r: (-totals[r], r))
    if not reasons_sorted:
        return None
    order = list(reversed(reasons_sorted))  # largest at the top
    with matplotlib.rc_context(_RC):
        fig = _figure(len(order))
        ax = fig.add_subplot()
        colors = matplotlib.colormaps["tab10"]
        ys = range(len(order))
        left = [0.0] * len(order)
        for i, (name, reasons) in enumerate(zip(stage_names, per_stage, strict=False)):
            widths = [reasons.get(r, 0.0) for r in order]
            if not any(widths):
                continue
            ax.barh(ys, widths, left=left, height=0.6, label=_short(name, 24), color=colors(i % 10))
            left = [a + b for a, b in zip(left, widths, strict=False)]
        for y, r in zip(ys, order, strict=False):
            ax.text(totals[r], y, f" {_fmt(totals[r])}", va="center", fontsize=9)
        ax.set_yticks(list(ys), [_short(r) for r in order])
        ax.set_xlim(0, max(totals.values()) * 1.12)
        ax.set_title("Rejects by reason")
        ax.set_xlabel("rejected items")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="y", visible=False)
        fig.legend(title="stage", loc="outside lower center", ncols=min(5, len(stage_names)), frameon=False)
        return _to_svg(fig, "rej")


def throughput_svg(stages: Sequence[dict[str, Any]]) -> str | None:
    """Audio-seconds processed per wall-second, per stage; log scale when values span more than 100x."""
    rows = [(str(s.get("name", "?")), _num(s.get("audio_seconds_per_second"))) for s in stages]
    positive = [v for _, v in rows if v > 0]
    if not positive:
        return None
    order = list(reversed(rows))
    with matplotlib.rc_context(_RC):
        fig = _figure(len(order))
        ax = fig.add_subplot()
        ys = range(len(order))
        log = max(positive) / min(positive) > 100
        ax.barh(ys, [v for _, v in order], height=0.6, color=_BAR)
        for y, (_, v) in zip(ys, order, strict=False):
            ax.text(max(0.0, v), y, f" {_fmt(v)}×" if v > 0 else " n/a", va="center", fontsize=9)
        ax.set_yticks(list(ys), [_short(n, 24) for n, _ in order])
        if log:
            ax.set_xscale("log")
            ax.set_xlim(min(positive) / 2, max(positive) * 4)
            # Plain "10×" labels: the default log formatter uses mathtext, which is disabled here.
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}×"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            ax.set_xlim(0, max(positive) * 1.18)
        ax.set_title("Throughput" + (" (log scale)" if log else ""))
        ax.set_xlabel("audio-seconds per wall-second (× realtime)")
        ax.grid(axis="y", visible=False)
        return _to_svg(fig, "thr")


def time_svg(stages: Sequence[dict[str, Any]]) -> str | None:
    """Per stage: wall seconds next to busy seconds (sum of per-item processing time)."""
    rows = [
        (str(s.get("name", "?")), _num(s.get("wall_seconds")), _num(s.get("busy_seconds"))) for s in stages
    ]
    if not any(w > 0 or b > 0 for _, w, b in rows):
        return None
    order = list(reversed(rows))
    top = max(max(w, b) for _, w, b in rows)
    with matplotlib.rc_context(_RC):
        fig = _figure(len(order), per_row=0.6)
        ax = fig.add_subplot()
        h = 0.38
        ys = [float(i) for i in range(len(order))]
        ax.barh([y + h / 2 for y in ys], [w for _, w, _ in order], height=h, color=_WALL, label="wall")
        ax.barh(
            [y - h / 2 for y in ys],
            [b for _, _, b in order],
            height=h,
            color=_BUSY,
            label="busy (sum of per-item time)",
        )
        for y, (_, w, b) in zip(ys, order, strict=False):
            ax.text(w, y + h / 2, f" {_fmt(w)} s", va="center", fontsize=9)
            util = f" ({b / w:.0%} of wall)" if w > 0 else ""
            ax.text(b, y - h / 2, f" {_fmt(b)} s{util}", va="center", fontsize=9)
        ax.set_yticks(ys, [_short(n, 24) for n, _, _ in order])
        ax.set_xlim(0, top * 1.35)
        ax.set_title("Where the time went")
        ax.set_xlabel("seconds")
        ax.grid(axis="y", visible=False)
        fig.legend(loc="outside lower center", ncols=2, frameon=False)
        return _to_svg(fig, "time")


def curves_svg(series: dict[str, Sequence[float]], title: str, xlabel: str, ylabel: str, prefix: str) -> str | None:
    """One line per named series against its index + 1 (e.g. a loss curve per model, x = optimizer step)."""
    drawn = {name: [_num(v) for v in values] for name, values in series.items() if values}
    if not drawn:
        return None
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(7.5, 3.6), dpi=100, layout="constrained")
        ax = fig.add_subplot()
        for name, values in drawn.items():
            ax.plot(range(1, len(values) + 1), values, label=_short(name), linewidth=1.4)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(drawn) > 1:
            ax.legend(fontsize=8)
        return _to_svg(fig, prefix)
