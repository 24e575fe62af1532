"""Arrow schemas of the engine's tables and the typed outcome every stage returns per item."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

OK = "ok"
REJECTED = "rejected"
#: The reason of an item whose processing killed its worker process ``max_attempts`` times.
WORKER_DIED = "worker_died"

#: One row per item outcome, appended to ``<root>/ledger/<stage>/*.parquet``.
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
        # the output record (JSON) of a computed ok outcome; None when reused (the computed row has it)
        pa.field("record", pa.string()),
        pa.field("audio_seconds", pa.float64(), nullable=False),
        pa.field("seconds", pa.float64(), nullable=False),
        pa.field("finished_at", pa.float64(), nullable=False),
        # when the item's computation began: its batch's start, so a batched stage's wall time is not read
        # as its per-item share of ``seconds`` (null in ledgers written before it existed)
        pa.field("started_at", pa.float64()),
        pa.field("worker", pa.string(), nullable=False),
        # seconds per sub-step the stage timed (decode, forward, write, ...), this item's share
        pa.field("timings", pa.map_(pa.string(), pa.float64())),
    ]
)

#: Rows streaming through one phase on Ray: an item and its latest record. The driver plans every
#: stage's fingerprint and earlier attempts up front; workers compute the stages from ``start`` on
#: and hand each outcome to the run tracker, from which the driver logs it (``pipeline.tracker``).
PHASE_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("record", pa.string(), nullable=False),  # JSON: the input of the next stage to run
        pa.field("status", pa.string(), nullable=False),  # ok, or rejected by a stage of this phase
        pa.field("start", pa.int32(), nullable=False),  # index of the first stage to compute
        pa.field("fingerprints", pa.list_(pa.string()), nullable=False),  # one per stage of the phase
        pa.field("attempts", pa.list_(pa.int32()), nullable=False),  # earlier attempts, per stage
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
    started_at: float | None = None
    worker: str = ""
    timings: dict[str, float] = field(default_factory=dict)
