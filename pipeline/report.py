"""The run report: per-stage accounting, reasons, throughput and durations, as JSON and HTML."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..schemas.job import JobSpec
from ..schemas.records import OK
from .ledger import Ledger
from .resources import ResourcePlan
from .stage import Stage
from .storage import Storage

log = logging.getLogger(__name__)

NICE_BIN_SECONDS = (1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stage_summary(name: str, version: int, rows: pa.Table) -> dict:
    """Accounting of one stage from its ledger rows (one row per input item of one run)."""
    ok_mask = pc.equal(rows["status"], OK)
    ok = int(pc.sum(ok_mask).as_py() or 0)
    rejected_rows = rows.filter(pc.invert(ok_mask))
    reasons: dict[str, int] = {}
    examples: dict[str, str] = {}
    for r in rejected_rows.select(["reason", "message"]).to_pylist():
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
        examples.setdefault(r["reason"], r["message"] or "")
    reused = int(pc.sum(rows["reused"]).as_py() or 0)
    computed = rows.filter(pc.invert(rows["reused"]))
    if computed.num_rows:
        ends = computed["finished_at"].to_numpy()
        starts = pc.fill_null(computed["started_at"], pc.subtract(computed["finished_at"], computed["seconds"]))
        starts = starts.to_numpy()
        wall = float(ends.max() - starts.min())
    else:
        wall = 0.0
    audio = float(pc.sum(rows.filter(ok_mask)["audio_seconds"]).as_py() or 0.0)
    computed_audio = float(pc.sum(computed.filter(pc.equal(computed["status"], OK))["audio_seconds"]).as_py() or 0.0)
    return {
        "name": name,
        "version": version,
        "input": rows.num_rows,
        "ok": ok,
        "rejected": rows.num_rows - ok,
        "reused": reused,
        "computed": rows.num_rows - reused,
        "reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "reason_examples": examples,
        "wall_seconds": round(wall, 3),
        "busy_seconds": round(float(pc.sum(computed["seconds"]).as_py() or 0.0), 3),
        "audio_seconds": round(audio, 3),
        "items_per_second": round(computed.num_rows / wall, 3) if wall > 0 else 0.0,
        "audio_seconds_per_second": round(computed_audio / wall, 3) if wall > 0 else 0.0,
    }


def duration_histogram(rows: pa.Table, target_bins: int = 20) -> dict:
    """Histogram of the audio durations of the ok items of one stage, on round bin widths."""
    seconds = rows.filter(pc.equal(rows["status"], OK))["audio_seconds"].to_numpy()
    if len(seconds) == 0:
        return {"edges": [], "counts": []}
    span = max(float(seconds.max()), 1.0)
    width = next((w for w in NICE_BIN_SECONDS if span / w <= target_bins), NICE_BIN_SECONDS[-1])
    edges = np.arange(0.0, np.floor(span / width) * width + width * 1.5, width)
    counts, edges = np.histogram(seconds, bins=edges)
    return {"edges": [round(float(e), 3) for e in edges], "counts": [int(c) for c in counts]}


def build_report(
    *,
    ledger: Ledger,
    job: JobSpec,
    run_id: str,
    status: str,
    started: float,
    finished: float,
    stages: list[type[Stage]],
    plans: list[ResourcePlan],
    notices: list[str],
    tracker: dict | None = None,
) -> dict:
    """The run report: per-stage accounting from the ledger, the stages' own sections, the tracker's counts."""
    live = (tracker or {}).get("stages", {})
    summaries, sections = [], []
    durations: dict = {"edges": [], "counts": []}
    for cls in stages:
        rows = ledger.run_rows(cls.name, run_id, records=True)
        summary = stage_summary(cls.name, cls.version, rows)
        summary["retries"] = live.get(cls.name, {}).get("deaths", 0)
        summary["timings"] = {k: round(v, 3) for k, v in sorted(live.get(cls.name, {}).get("timings", {}).items())}
        summaries.append(summary)
        if not durations["counts"]:
            durations = duration_histogram(rows)
        section = cls.report_section(rows, ledger.storage) if rows.num_rows else None
        if section:
            sections.append({"stage": cls.name, **section})
    return {
        "job": job.name,
        "run_id": run_id,
        "status": status,
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "wall_seconds": round(finished - started, 3),
        "notices": list(notices),
        "resource_plan": [p.as_dict() for p in plans],
        "stages": summaries,
        "sections": sections,
        "warnings": dict(sorted((tracker or {}).get("warnings", {}).items(), key=lambda kv: -kv[1])),
        "durations": durations,
        "accounting_closed": all(s["input"] == s["ok"] + s["rejected"] for s in summaries),
    }


def write_report(storage: Storage, run_dir: str, report: dict) -> str:
    """Write ``report.json`` and ``report.html`` into the run folder and as the root's latest report."""
    from .report_html import render_report_html

    text = json.dumps(report, indent=2, sort_keys=True).encode()
    html = render_report_html(report).encode()
    for folder in (run_dir, "."):
        prefix = "" if folder == "." else f"{folder}/"
        storage.write_bytes(f"{prefix}report.json", text)
        storage.write_bytes(f"{prefix}report.html", html)
    return storage.uri(f"{run_dir}/report.html")


def format_summary_table(summaries: list[dict]) -> str:
    """A plain-text table of per-stage accounting for terminals and logs."""
    header = (f"{'stage':<14}{'input':>8}{'ok':>8}{'rejected':>10}{'reused':>8}{'computed':>10}{'retries':>9}"
              f"{'x realtime':>12}")
    lines = [header, "-" * len(header)]
    for s in summaries:
        lines.append(
            f"{s['name']:<14}{s['input']:>8}{s['ok']:>8}{s['rejected']:>10}{s['reused']:>8}{s['computed']:>10}"
            f"{s.get('retries', 0):>9}{s['audio_seconds_per_second']:>12.1f}"
        )
        for reason, count in s["reasons"].items():
            lines.append(f"    {reason}: {count}  ({s['reason_examples'].get(reason, '')[:90]})")
        if s.get("timings"):
            lines.append("    time in: " + ", ".join(f"{k} {v:.1f} s" for k, v in s["timings"].items()))
    return "\n".join(lines)


def format_sections(sections: list[dict]) -> str:
    """The stages' own report sections as text: a title and its lines each."""
    return "\n".join(f"{s['title']}\n" + "".join(f"    {line}\n" for line in s.get("lines", [])) for s in sections)
