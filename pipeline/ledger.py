"""The per-stage ledger: every item outcome, appended as Parquet parts, never rewritten in place.

Workers append one part per batch, so a killed driver loses nothing that finished. Parts are
compacted at the end of a run; a compacted file names the parts it absorbed in its metadata, so a
crash between writing it and deleting them never double-counts a row.
"""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..schemas.records import LEDGER_SCHEMA, OK, Outcome
from .storage import Storage

_ABSORBED_KEY = b"songcorpus.absorbed_parts"


@dataclass(frozen=True)
class Prior:
    """What earlier runs concluded about one fingerprint."""

    status: str
    reason: str | None
    message: str | None
    retryable: bool
    attempts: int
    audio_seconds: float

    def is_final(self, max_attempts: int) -> bool:
        """True when the item must not be computed again: ok, a deterministic rejection, or out of tries."""
        return self.status == OK or not self.retryable or self.attempts >= max_attempts


def outcomes_to_table(run_id: str, stage: str, version: int, outcomes: list[Outcome]) -> pa.Table:
    rows = [
        {
            "run_id": run_id,
            "stage": stage,
            "stage_version": version,
            "item_id": o.item_id,
            "fingerprint": o.fingerprint,
            "status": o.status,
            "reason": o.reason,
            "message": o.message,
            "retryable": o.retryable,
            "reused": o.reused,
            "attempt": o.attempt,
            "record": None if o.record is None else json.dumps(o.record, sort_keys=True),
            "audio_seconds": float(o.audio_seconds),
            "seconds": float(o.seconds),
            "finished_at": float(o.finished_at),
            "worker": o.worker,
        }
        for o in outcomes
    ]
    return pa.Table.from_pylist(rows, schema=LEDGER_SCHEMA)


def _table_bytes(table: pa.Table, metadata: dict[bytes, bytes] | None = None) -> bytes:
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


class Ledger:
    """Read and append the ledger of every stage under ``<root>/ledger``."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def _dir(self, stage: str) -> str:
        return f"ledger/{stage}"

    def append(self, run_id: str, stage: str, version: int, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        table = outcomes_to_table(run_id, stage, version, outcomes)
        # the row count in the name lets progress be counted from a directory listing alone
        rel = f"{self._dir(stage)}/part-{run_id}-{uuid.uuid4().hex}-{len(outcomes)}.parquet"
        self.storage.write_bytes(rel, _table_bytes(table))

    def _live_files(self, stage: str) -> list[str]:
        files = self.storage.list_files(self._dir(stage), ".parquet")
        absorbed: set[str] = set()
        for rel in files:
            if rel.rsplit("/", 1)[1].startswith("compacted-"):
                meta = pq.read_schema(self.storage.fs.open_input_file(self.storage.full(rel))).metadata or {}
                absorbed.update(json.loads(meta.get(_ABSORBED_KEY, b"[]")))
        return [f for f in files if f.rsplit("/", 1)[1] not in absorbed]

    def read(self, stage: str) -> pa.Table:
        """Every outcome ever logged for ``stage`` (empty table when none)."""
        tables = [
            pq.read_table(self.storage.fs.open_input_file(self.storage.full(rel)), schema=LEDGER_SCHEMA)
            for rel in self._live_files(stage)
        ]
        if not tables:
            return LEDGER_SCHEMA.empty_table()
        return pa.concat_tables(tables).replace_schema_metadata(None)

    def stages(self) -> list[str]:
        return self.storage.list_dirs("ledger")

    def priors(self, stage: str) -> dict[str, Prior]:
        """Latest computed outcome per fingerprint, with how many times it was computed."""
        table = self.read(stage)
        computed = table.filter(pc.invert(table["reused"])).sort_by("finished_at")
        attempts: dict[str, int] = {}
        latest: dict[str, dict] = {}
        for row in computed.select(
            ["fingerprint", "status", "reason", "message", "retryable", "audio_seconds"]
        ).to_pylist():
            fp = row["fingerprint"]
            attempts[fp] = attempts.get(fp, 0) + 1
            latest[fp] = row
        return {
            fp: Prior(
                status=row["status"],
                reason=row["reason"],
                message=row["message"],
                retryable=row["retryable"],
                attempts=attempts[fp],
                audio_seconds=row["audio_seconds"],
            )
            for fp, row in latest.items()
        }

    def rows_logged(self, stage: str, run_id: str) -> int:
        """Outcomes ``run_id`` has logged so far in uncompacted parts (cheap: a listing, no reads)."""
        prefix = f"part-{run_id}-"
        names = (rel.rsplit("/", 1)[1] for rel in self.storage.list_files(self._dir(stage), ".parquet"))
        return sum(int(n[: -len(".parquet")].rsplit("-", 1)[1]) for n in names if n.startswith(prefix))

    def compact(self, stage: str, min_parts: int = 2) -> None:
        """Merge the live rows of ``stage`` into one compacted file and delete every older file.

        The new file lists every file it replaces (stale absorbed parts included), so whether the
        deletions below happen or not, each row is read exactly once.
        """
        everything = self.storage.list_files(self._dir(stage), ".parquet")
        if len(self._live_files(stage)) < min_parts:
            return
        table = self.read(stage)
        names = sorted(rel.rsplit("/", 1)[1] for rel in everything)
        rel = f"{self._dir(stage)}/compacted-{uuid.uuid4().hex}.parquet"
        self.storage.write_bytes(rel, _table_bytes(table, {_ABSORBED_KEY: json.dumps(names).encode()}))
        for old in everything:
            self.storage.delete(old)
