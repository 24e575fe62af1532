"""Arrow schemas of the engine's tables and the typed outcome every stage returns per item."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

OK = "ok"
REJECTED = "rejected"

#: One row per item outcome, appended to ``<root>/ledger/<stage>/part-*.parquet``.
LEDGER_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("stage_version", pa.int32(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("fingerprint", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("message", pa.string()),
        pa.field("retryable", pa.bool_(), nullable=False),
        pa.field("reused", pa.bool_(), nullable=False),
        pa.field("attempt", pa.int32(), nullable=False),
        pa.field("record", pa.string()),
        pa.field("audio_seconds", pa.float64(), nullable=False),
        pa.field("seconds", pa.float64(), nullable=False),
        pa.field("finished_at", pa.float64(), nullable=False),
        pa.field("worker", pa.string(), nullable=False),
    ]
)

#: Rows flowing between stages inside a run: an item, the fingerprint of its latest output, and that
#: output as JSON (small metadata and URIs; audio itself stays in the artifact store).
STREAM_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("fingerprint", pa.string(), nullable=False),
        pa.field("record", pa.string(), nullable=False),
    ]
)


@dataclass
class Outcome:
    """What became of one item in one stage. ``record`` is the output row when ``status == OK``."""

    item_id: str
    fingerprint: str
    status: str
    record: dict | None = None
    reason: str | None = None
    message: str | None = None
    retryable: bool = False
    reused: bool = False
    attempt: int = 1
    audio_seconds: float = 0.0
    seconds: float = 0.0
    finished_at: float = 0.0
    worker: str = ""
