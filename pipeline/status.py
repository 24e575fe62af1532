"""``songcorpus status ROOT``: per-stage accounting of the latest (or a given) run, live or finished."""

from __future__ import annotations

import json

from .ledger import Ledger, latest_run
from .registry import stage_class
from .report import format_sections, format_summary_table, stage_summary
from .root_lock import read_holder
from .storage import Storage


def status_text(root: str, run_id: str | None = None) -> str:
    storage = Storage(root)
    run_id = run_id or latest_run(storage)
    if run_id is None:
        return f"no runs under {root}"
    report_rel = f"runs/{run_id}/report.json"
    if storage.exists(report_rel):
        report = json.loads(storage.read_bytes(report_rel))
        summaries = report["stages"]
        state = f"{report['status']} in {report['wall_seconds']:.1f} s"
        notices = "".join(f"NOTE: {n}\n" for n in report["notices"])
    else:  # still running (or killed): what the ledger has so far, flushed every few thousand items
        ledger = Ledger(storage)
        summaries = []
        for stage in ledger.stages():
            rows = ledger.run_rows(stage, run_id)
            if rows.num_rows:
                summaries.append(stage_summary(stage, int(rows["stage_version"][0].as_py()), rows))
        holder = read_holder(storage)
        if holder is not None and holder.run_id == run_id and not holder.is_stale():
            state = f"running ({holder.describe()}); counts of what the ledger holds (flushed within seconds)"
        else:
            state = "stopped before it finished (killed); counts of what reached the ledger: run the job again"
        notices = ""
    closed = all(s["input"] == s["ok"] + s["rejected"] for s in summaries)
    return (
        f"{notices}run {run_id}: {state}\n{format_summary_table(summaries)}\n"
        f"accounting {'closed' if closed else 'NOT closed'}: input = ok + rejected for every stage"
    )


def sections_text(root: str, stages: tuple[str, ...], run_id: str | None = None) -> str:
    """The report sections ``stages`` contribute for the latest (or a given) run, as text."""
    storage = Storage(root)
    run_id = run_id or latest_run(storage)
    if run_id is None:
        return f"no runs under {root}"
    ledger = Ledger(storage)
    sections = []
    for name in stages:
        rows = ledger.run_rows(name, run_id, records=True)
        section = stage_class(name).report_section(rows, storage) if rows.num_rows else None
        sections.append(section or {"title": f"{name}: not run", "lines": []})
    return f"run {run_id}\n" + format_sections(sections)
