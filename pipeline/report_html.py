"""Render a run's ``report.json`` as one self-contained HTML page.

The page has no external references (no scripts, stylesheets, fonts or images from elsewhere): CSS is inline
and plots are inline SVG from :mod:`songcorpus.pipeline.report_plots`. Every string taken from the report
is HTML-escaped, and the output is byte-identical for the same input (no render timestamps).
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

from songcorpus.pipeline import report_plots

logger = logging.getLogger(__name__)

_STATUS_CLASS = {"completed": "ok", "failed": "bad", "stalled": "warn", "running": "info"}

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1f2933;
background:#f4f6f8}
main{max-width:1240px;margin:0 auto;padding:18px 22px 40px}
.banner{padding:12px 22px;font-size:15px}
.banner.warn{background:#fff3cd;border-bottom:3px solid #e0a800;color:#5c4400}
.banner.quiet{background:#e9eef2;color:#52606d;font-size:13px}
.banner ul{margin:4px 0 0;padding-left:22px}
.banner strong{font-size:16px}
header{background:#fff;border-radius:8px;padding:16px 20px;margin-bottom:16px;box-shadow:0 1px 3px #0002}
h1{margin:0 0 4px;font-size:26px}
h2{font-size:18px;margin:26px 0 10px}
.runid{font-family:ui-monospace,Menlo,Consolas,monospace;color:#52606d}
.pill{display:inline-block;padding:2px 12px;border-radius:12px;font-weight:600;color:#fff;margin-left:8px;
font-size:14px;vertical-align:middle}
.pill.ok{background:#2f9e44}.pill.bad{background:#d64545}.pill.warn{background:#e8890c}
.pill.info{background:#3478c6}.pill.other{background:#7b8794}
.meta{display:flex;flex-wrap:wrap;gap:6px 28px;margin-top:10px;color:#3e4c59}
.meta b{color:#1f2933}
.acct{margin-top:12px;padding:8px 12px;border-radius:6px;font-weight:600}
.acct.ok{background:#e3f6e8;color:#1e6b32}.acct.none{background:#e9eef2;color:#52606d}.acct.bad{background:#fde8e8;color:#9b1c1c}
.acct ul{margin:4px 0 0;font-weight:400}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;margin:12px 0 4px}
.card{background:#fff;border-radius:8px;padding:10px 14px;box-shadow:0 1px 3px #0002}
.card .v{font-size:22px;font-weight:700}.card .k{color:#616e7c;font-size:12px;text-transform:uppercase}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 3px #0002;border-radius:8px;
overflow:hidden}
th,td{padding:6px 10px;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top}
th{background:#e9eef2;font-size:12px;text-transform:uppercase;color:#3e4c59}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.bad td{background:#fde8e8}
.fail{color:#c92a2a;font-weight:700}.pass{color:#2f9e44;font-weight:700}
.msg{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;color:#52606d;word-break:break-word}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
.plot{background:#fff;border-radius:8px;padding:10px;box-shadow:0 1px 3px #0002;text-align:center}
.plot svg{max-width:100%;height:auto}
.empty{color:#7b8794;font-style:italic;padding:30px 0;margin:0}
.plot .empty{padding:60px 0}
.plot h3{margin:4px 0;font-size:14px;text-align:left}
footer{margin-top:30px;color:#9aa5b1;font-size:12px}
"""


def _e(value: Any) -> str:
    """Escape any report value for HTML text or attribute context."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _int(value: Any) -> str:
    v = _num(value)
    return "—" if v is None else f"{v:,.0f}"


def _float(value: Any, digits: int = 1, suffix: str = "") -> str:
    v = _num(value)
    return "—" if v is None else f"{v:,.{digits}f}{suffix}"


def _duration(seconds: Any) -> str:
    v = _num(seconds)
    if v is None:
        return "—"
    if v < 60:
        return f"{v:.1f} s"
    h, rest = divmod(round(v), 3600)
    m, s = divmod(rest, 60)
    return (f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s") + f" ({v:,.0f} s)"


def _unclosed(stages: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(stage name, explanation) for every stage where input != ok + rejected."""
    bad = []
    for s in stages:
        n_in, ok, rej = (_num(s.get(k)) for k in ("input", "ok", "rejected"))
        if n_in is None or ok is None or rej is None or n_in != ok + rej:
            diff = _int((n_in or 0) - (ok or 0) - (rej or 0))
            why = f"input {_int(n_in)} ≠ ok {_int(ok)} + rejected {_int(rej)} (difference {diff})"
            bad.append((str(s.get("name", "?")), why))
    return bad


def _table(headers: Iterable[tuple[str, bool]], rows: list[str], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{_e(empty)}</p>'
    head = "".join(f'<th class="n">{_e(h)}</th>' if n else f"<th>{_e(h)}</th>" for h, n in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _banner(notices: Sequence[Any]) -> str:
    if not notices:
        return '<div class="banner quiet" id="notices">No notices for this run.</div>'
    items = "".join(f"<li>{_e(n)}</li>" for n in notices)
    return (
        f'<div class="banner warn" id="notices" role="alert"><strong>⚠ Notice'
        f"{'s' if len(notices) > 1 else ''}</strong><ul>{items}</ul></div>"
    )


def _header(report: dict[str, Any], stages: Sequence[dict[str, Any]]) -> str:
    status = str(report.get("status") or "unknown")
    pill = f'<span class="pill {_STATUS_CLASS.get(status, "other")}">{_e(status)}</span>'
    bad = _unclosed(stages)
    if not stages:
        acct = '<div class="acct none" id="accounting">Accounting: no stages recorded.</div>'
    elif bad:
        items = "".join(f"<li><b>{_e(n)}</b>: {_e(why)}</li>" for n, why in bad)
        acct = (
            f'<div class="acct bad" id="accounting">✗ Accounting NOT closed in {len(bad)} of '
            f"{len(stages)} stage(s): items were lost or double-counted<ul>{items}</ul></div>"
        )
    else:
        acct = (
            '<div class="acct ok" id="accounting">✓ Accounting closed: input = ok + rejected '
            "for every stage</div>"
        )
    meta = [
        ("run id", f'<span class="runid">{_e(report.get("run_id"))}</span>'),
        ("started", _e(report.get("started_at") or "—")),
        ("finished", _e(report.get("finished_at") or "—")),
        ("wall time", _e(_duration(report.get("wall_seconds")))),
    ]
    meta_html = "".join(f"<span>{k}: <b>{v}</b></span>" for k, v in meta)
    return (
        f'<header id="header"><h1>{_e(report.get("job") or "unnamed job")}{pill}</h1>'
        f'<div class="meta">{meta_html}</div>{acct}</header>'
    )


def _cards(stages: Sequence[dict[str, Any]]) -> str:
    if not stages:
        return ""
    rejected = sum(_num(s.get("rejected")) or 0 for s in stages)
    audio_h = (_num(stages[-1].get("audio_seconds")) or 0) / 3600
    cards = [
        ("items in", _int(stages[0].get("input"))),
        ("ok after last stage", _int(stages[-1].get("ok"))),
        ("rejected (all stages)", _int(rejected)),
        ("stages", str(len(stages))),
        ("audio hours (last stage)", f"{audio_h:,.2f}"),
    ]
    body = "".join(
        f'<div class="card"><div class="k">{_e(k)}</div><div class="v">{_e(v)}</div></div>' for k, v in cards
    )
    return f'<div class="cards">{body}</div>'


def _stage_table(stages: Sequence[dict[str, Any]]) -> str:
    bad = {n for n, _ in _unclosed(stages)}
    rows = []
    for s in stages:
        name = str(s.get("name", "?"))
        hours = _num(s.get("audio_seconds"))
        ok = name not in bad
        mark = '<span class="pass">✓</span>' if ok else '<span class="fail">✗ not closed</span>'
        cells = [f"<td><b>{_e(name)}</b></td>", f'<td class="n">{_e(s.get("version"))}</td>']
        cells += [
            f'<td class="n">{_int(s.get(k))}</td>' for k in ("input", "ok", "rejected", "reused", "computed")
        ]
        cells += [
            f'<td class="n">{_float(None if hours is None else hours / 3600, 2)}</td>',
            f'<td class="n">{_float(s.get("wall_seconds"), 1)}</td>',
            f'<td class="n">{_float(s.get("audio_seconds_per_second"), 1, "×")}</td>',
            f'<td class="n">{_float(s.get("items_per_second"), 2)}</td>',
            f"<td>{mark}</td>",
        ]
        row_cls = "" if ok else ' class="bad"'
        rows.append(f"<tr{row_cls}>{''.join(cells)}</tr>")
    headers = [
        ("stage", False),
        ("version", True),
        ("input", True),
        ("ok", True),
        ("rejected", True),
        ("reused", True),
        ("computed", True),
        ("audio h", True),
        ("wall s", True),
        ("×realtime", True),
        ("items/s", True),
        ("accounting", False),
    ]
    return _table(headers, rows, "No stages ran.")


def _plan_table(plan: Sequence[dict[str, Any]]) -> str:
    rows = [
        f'<tr><td><b>{_e(p.get("stage"))}</b></td><td class="n">{_float(p.get("num_cpus"), 2)}</td>'
        f'<td class="n">{_float(p.get("num_gpus"), 2)}</td>'
        f'<td class="n">{_int(p.get("min_actors"))}–{_int(p.get("max_actors"))}</td>'
        f'<td class="msg">{_e(p.get("note") or "")}</td></tr>'
        for p in plan
    ]
    headers = [
        ("stage", False),
        ("CPUs/actor", True),
        ("GPUs/actor", True),
        ("actors", True),
        ("note", False),
    ]
    return _table(headers, rows, "No resource plan recorded.")


def _reasons_table(stages: Sequence[dict[str, Any]]) -> str:
    rows = []
    for s in stages:
        reasons = s.get("reasons") or {}
        examples = s.get("reason_examples") or {}
        for reason, count in sorted(reasons.items(), key=lambda kv: (-(_num(kv[1]) or 0), str(kv[0]))):
            rows.append(
                f"<tr><td>{_e(s.get('name'))}</td><td><b>{_e(reason)}</b></td>"
                f'<td class="n">{_int(count)}</td><td class="msg">{_e(examples.get(reason, ""))}</td></tr>'
            )
    headers = [("stage", False), ("reason", False), ("count", True), ("example message", False)]
    return _table(headers, rows, "No items were rejected.")


def _plot(svg: str | None, empty: str) -> str:
    inner = svg if svg else f'<p class="empty">{_e(empty)}</p>'
    return f'<div class="plot">{inner}</div>'


def _plots(report: dict[str, Any], stages: Sequence[dict[str, Any]]) -> str:
    durations = report.get("durations") or {}
    parts = [
        _plot(
            report_plots.durations_svg(durations.get("edges") or [], durations.get("counts") or []),
            "Song durations: no data.",
        ),
        _plot(report_plots.rejects_svg(stages), "Rejects by reason: nothing was rejected."),
        _plot(report_plots.throughput_svg(stages), "Throughput: no audio was processed."),
        _plot(report_plots.time_svg(stages), "Where the time went: no timings recorded."),
    ]
    return f'<div class="plots">{"".join(parts)}</div>'


def _cell(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"<td class='n'>{_int(value) if isinstance(value, int) else _float(value, 3)}</td>"
    return f"<td>{_e(value)}</td>"


def _section(section: dict[str, Any]) -> str:
    """A section a stage contributed: its title, lines, histograms and one table, all optional."""
    plots = [
        _plot(report_plots.durations_svg(h.get("edges") or [], h.get("counts") or [], h.get("title", ""),
                                         h.get("xlabel", ""), h.get("ylabel", ""), h.get("id", "h")),
              f"{h.get('title', '')}: no data.")
        for h in section.get("histograms") or []
    ] + [
        _plot(report_plots.curves_svg(c.get("series") or {}, c.get("title", ""), c.get("xlabel", ""),
                                      c.get("ylabel", ""), c.get("id", "c")), f"{c.get('title', '')}: no data.")
        for c in section.get("curves") or []
    ]
    table = section.get("table") or {}
    rows = ["<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in table.get("rows") or []]
    numeric = [all(isinstance(r[i], int | float) for r in table.get("rows") or [[0] * 9]) for i in
               range(len(table.get("columns") or []))]
    return (
        f"<h2>{_e(section.get('title', section.get('stage', '')))}</h2>"
        + "".join(f"<p>{_e(line)}</p>" for line in section.get("lines") or [])
        + (f'<div class="plots">{"".join(plots)}</div>' if plots else "")
        + (_table(zip(table["columns"], numeric, strict=False), rows, table.get("empty", "Nothing.")) if table else "")
    )


def _timings_table(stages: list[dict[str, Any]]) -> str:
    rows = [f"<tr><td>{_e(s.get('name'))}</td><td>{_e(step)}</td><td class='n'>{_float(seconds, 2)}</td></tr>"
            for s in stages for step, seconds in (s.get("timings") or {}).items()]
    return _table([("Stage", False), ("Sub-step", False), ("Seconds", True)], rows,
                  "No stage timed its sub-steps.")


def _warnings_table(warnings: dict[str, int]) -> str:
    rows = [f"<tr><td class='msg'>{_e(message)}</td><td class='n'>{_int(count)}</td></tr>"
            for message, count in warnings.items()]
    return _table([("Library warning (first line)", False), ("Times", True)], rows, "No library warnings.")


def render_report_html(report: dict[str, Any]) -> str:
    """Render a run report (the ``report.json`` dict of a pipeline run) as one self-contained HTML page."""
    if not isinstance(report, dict):
        raise TypeError(f"render_report_html expects the report.json dict, got {type(report).__name__}")
    stages: list[dict[str, Any]] = list(report.get("stages") or [])
    title = f"{report.get('job') or 'run'} · {report.get('run_id') or ''} · songcorpus report"
    body = [
        _banner(list(report.get("notices") or [])),
        "<main>",
        _header(report, stages),
        _cards(stages),
        "<h2>Stages</h2>",
        _stage_table(stages),
        "<h2>Plots</h2>",
        _plots(report, stages),
        *(_section(section) for section in report.get("sections") or []),
        "<h2>Time inside stages</h2>",
        _timings_table(stages),
        "<h2>Rejects by reason</h2>",
        _reasons_table(stages),
        "<h2>Resource plan</h2>",
        _plan_table(list(report.get("resource_plan") or [])),
        "<h2>Warnings from libraries</h2>",
        _warnings_table(dict(report.get("warnings") or {})),
        "<footer>songcorpus run report</footer>",
        "</main>",
    ]
    return _page(title, body)


def _page(title: str, body: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def render_sections_html(title: str, lines: Sequence[str], sections: Sequence[dict[str, Any]], footer: str) -> str:
    """A self-contained page of report sections (title, lines, histograms, curves, table), as in a run report;
    the evaluator's report is one."""
    body = ["<main>", f"<h1>{_e(title)}</h1>", *(f"<p>{_e(line)}</p>" for line in lines),
            *(_section(section) for section in sections), f"<footer>{_e(footer)}</footer>", "</main>"]
    return _page(title, body)
