"""What segment and filter add to the run report: songs and clips kept, hours, and each rule's loss."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa

from ..schemas.records import OK


def clip_section(stage: str, dropped_what: str, rows: pa.Table) -> dict:
    """A report section from the stage's ledger rows of one run (records filled in)."""
    records = [json.loads(r) for r, status in zip(rows["record"].to_pylist(), rows["status"].to_pylist(), strict=True)
               if status == OK and r is not None]
    rejected = Counter(reason for reason, status in zip(rows["reason"].to_pylist(), rows["status"].to_pylist(),
                                                        strict=True) if status != OK)
    dropped: Counter = Counter()
    for record in records:
        dropped.update(record.get(f"{stage}_dropped", {}))
    clips = sum(r["clip_count"] for r in records)
    hours = sum(r["clip_seconds"] for r in records) / 3600
    lines = [f"{rows.num_rows} songs in, {len(records)} with clips: {clips} clips, {hours:.3f} h"]
    lines += [f"songs rejected, {reason}: {count}" for reason, count in sorted(rejected.items())]
    lines += [f"{dropped_what} dropped, {reason}: {count}" for reason, count in sorted(dropped.items())]
    return {
        "title": f"{stage}: clips",
        "lines": lines,
        "table": {"columns": [f"{stage}: {dropped_what} dropped, by reason", "count"],
                  "rows": [[reason, count] for reason, count in sorted(dropped.items())],
                  "empty": f"{stage} dropped nothing."},
    }
