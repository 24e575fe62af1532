"""``songcorpus status ROOT``: per-stage accounting of the latest (or a given) run, live or finished."""

from __future__ import annotations

import json

import pyarrow.compute as pc

from .ledger import Ledger
from .report import format_summary_table, stage_summary
from .storage import Storage


def latest_run(storage: Storage) -> str | None:
    runs = storage.list_dirs("runs")
    return runs[-1] if runs else None


def status_text(root: str, run_id: str | None = None) -> str:
    storage = Storage(root)
    run_id = run_id or latest_run(storage)
    if run_id is None:
        return f"no runs under {root}"
    ledger = Ledger(storage)
    summaries = []
    for stage in ledger.stages():
        table = ledger.read(stage)
        rows = table.filter(pc.equal(table["run_id"], run_id))
        if rows.num_rows:
            version = int(rows["stage_version"][0].as_py())
            summaries.append(stage_summary(stage, version, rows))
    report_rel = f"runs/{run_id}/report.json"
    if storage.exists(report_rel):
        report = json.loads(storage.read_bytes(report_rel))
        order = [s["name"] for s in report["stages"]]
        summaries.sort(key=lambda s: order.index(s["name"]) if s["name"] in order else len(order))
        state = f"{report['status']} in {report['wall_seconds']:.1f} s"
        notices = "".join(f"NOTE: {n}\n" for n in report["notices"])
    else:
        state, notices = "running (or killed before it finished)", ""
    closed = all(s["input"] == s["ok"] + s["rejected"] for s in summaries)
    return (
        f"{notices}run {run_id}: {state}\n{format_summary_table(summaries)}\n"
        f"accounting {'closed' if closed else 'NOT closed'}: input = ok + rejected for every stage"
    )


def clip_plan_text(root: str) -> str:
    """Songs, clips and hours after segment and filter in the latest run, and the loss at each rule."""
    storage = Storage(root)
    run_id = latest_run(storage)
    ledger = Ledger(storage)
    lines = [f"clip plan of run {run_id}"]
    for stage in ("segment", "filter"):
        table = ledger.read(stage)
        rows = table.filter(pc.equal(table["run_id"], run_id)).to_pylist() if run_id else []
        if not rows:
            lines.append(f"{stage}: not run")
            continue
        ok = [json.loads(r["record"]) for r in rows if r["status"] == "ok"]
        clips = sum(r["clip_count"] for r in ok)
        hours = sum(r["clip_seconds"] for r in ok) / 3600
        lines.append(f"{stage}: {len(rows)} songs in, {len(ok)} with clips: {clips} clips, {hours:.3f} h")
        rejected: dict[str, int] = {}
        for r in rows:
            if r["status"] != "ok":
                rejected[r["reason"]] = rejected.get(r["reason"], 0) + 1
        dropped: dict[str, int] = {}
        for record in ok:
            for reason, count in record.get(f"{stage}_dropped", {}).items():
                dropped[reason] = dropped.get(reason, 0) + count
        for reason, count in sorted(rejected.items()):
            lines.append(f"    songs rejected, {reason}: {count}")
        for reason, count in sorted(dropped.items()):
            what = "lines or spans" if stage == "segment" else "clips"
            lines.append(f"    {what} dropped, {reason}: {count}")
    return "\n".join(lines)
