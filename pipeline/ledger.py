"""The per-stage ledger: every item outcome, appended as Parquet files, never rewritten in place.

The driver appends outcomes in parts of thousands of rows (see :class:`LedgerWriter`), and merges
parts as they pile up, tier by tier: ``fan_in`` files of one level become one file of the next. A
stage's folder therefore holds at most ``fan_in`` files per level, and a level holds ``fan_in``
times the rows of the one below it, so the file count grows with the logarithm of the rows ever
logged. A merged file names the files it absorbed in its metadata, so a crash between writing it
and deleting them never double-counts a row.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..schemas.records import LEDGER_SCHEMA, OK, Outcome
from .storage import Storage

_ABSORBED_KEY = b"songcorpus.absorbed_parts"
_MERGED = re.compile(r"^merged-L(\d+)-")
FAN_IN = 8


@dataclass(frozen=True)
class Prior:
    """What earlier runs concluded about one fingerprint."""

    status: str
    reason: str | None
    message: str | None
    retryable: bool
    attempts: int
    audio_seconds: float
    #: the output record (JSON text) of an ok outcome, as the next stage reads it
    record: str | None = None

    def is_final(self, max_attempts: int) -> bool:
        """True when the item must not be computed again: ok, a deterministic rejection, or out of tries."""
        return self.status == OK or not self.retryable or self.attempts >= max_attempts


def outcome_row(run_id: str, stage: str, version: int, o: Outcome, record_json: str | None = None) -> dict:
    """One ledger row; ``record_json`` saves re-encoding a record that is already JSON text."""
    if record_json is None and o.record is not None and not o.reused:
        record_json = json.dumps(o.record, sort_keys=True)
    return {
        "run_id": run_id, "stage": stage, "stage_version": version, "item_id": o.item_id,
        "fingerprint": o.fingerprint, "status": o.status, "reason": o.reason, "message": o.message,
        "retryable": o.retryable, "reused": o.reused, "attempt": o.attempt,
        "record": None if o.reused else record_json,
        "audio_seconds": float(o.audio_seconds), "seconds": float(o.seconds),
        "finished_at": float(o.finished_at), "started_at": o.started_at, "worker": o.worker,
        "timings": o.timings or None,
    }


def _table_bytes(table: pa.Table, metadata: dict[bytes, bytes] | None = None) -> bytes:
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _level(name: str) -> int:
    """0 for a part, n for a file merged at level n (``compacted-`` files predate levels: 1)."""
    match = _MERGED.match(name)
    return int(match.group(1)) if match else int(name.startswith("compacted-"))


class Ledger:
    """Read and append the ledger of every stage under ``<root>/ledger``."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def _dir(self, stage: str) -> str:
        return f"ledger/{stage}"

    def append(self, run_id: str, stage: str, version: int, outcomes: list[Outcome]) -> None:
        """Write ``outcomes`` as one new part."""
        if outcomes:
            rows = [outcome_row(run_id, stage, version, o) for o in outcomes]
            self.append_table(stage, pa.Table.from_pylist(rows, schema=LEDGER_SCHEMA))

    def append_table(self, stage: str, table: pa.Table) -> None:
        """Write ``table`` (in :data:`LEDGER_SCHEMA`) as one new part."""
        self.storage.write_bytes(f"{self._dir(stage)}/part-{uuid.uuid4().hex}.parquet", _table_bytes(table))

    def _live_files(self, stage: str) -> list[str]:
        files = self.storage.list_files(self._dir(stage), ".parquet")
        absorbed: set[str] = set()
        for rel in files:
            if _level(rel.rsplit("/", 1)[1]) > 0:
                meta = pq.read_schema(self.storage.fs.open_input_file(self.storage.full(rel))).metadata or {}
                absorbed.update(json.loads(meta.get(_ABSORBED_KEY, b"[]")))
        return [f for f in files if f.rsplit("/", 1)[1] not in absorbed]

    def _read_files(self, files: Iterable[str], columns: list[str] | None = None) -> pa.Table:
        schema = LEDGER_SCHEMA if columns is None else pa.schema([LEDGER_SCHEMA.field(c) for c in columns])
        tables = [self._read_file(rel, schema) for rel in files]
        return pa.concat_tables(tables).replace_schema_metadata(None) if tables else schema.empty_table()

    def _read_file(self, rel: str, schema: pa.Schema) -> pa.Table:
        """One file as ``schema``; columns a file from an older release lacks read as nulls."""
        with self.storage.fs.open_input_file(self.storage.full(rel)) as src:
            present = set(pq.read_schema(src).names)
            table = pq.read_table(src, columns=[f.name for f in schema if f.name in present])
        columns = [table[f.name] if f.name in present else pa.nulls(table.num_rows, f.type) for f in schema]
        return pa.Table.from_arrays(columns, schema=schema)

    def read(self, stage: str, columns: list[str] | None = None) -> pa.Table:
        """Every outcome ever logged for ``stage`` (empty table when none)."""
        return self._read_files(self._live_files(stage), columns)

    def stages(self) -> list[str]:
        return self.storage.list_dirs("ledger")

    def priors(self, stage: str) -> dict[str, Prior]:
        """Latest computed outcome per fingerprint, with its attempt count and (if ok) its record."""
        table = self.read(stage, ["fingerprint", "status", "reason", "message", "retryable", "attempt",
                                  "audio_seconds", "record", "reused", "finished_at"])
        computed = table.filter(pc.invert(table["reused"])).sort_by("finished_at")
        columns = [computed[c].to_pylist() for c in ("fingerprint", "status", "reason", "message", "retryable",
                                                     "attempt", "audio_seconds", "record")]
        return {
            fp: Prior(status, reason, message, retryable, attempt, audio_seconds, record)
            for fp, status, reason, message, retryable, attempt, audio_seconds, record in zip(*columns, strict=True)
        }

    def run_rows(self, stage: str, run_id: str, *, records: bool = False) -> pa.Table:
        """One row per item that ``run_id`` logged for ``stage``: its last (a barrier stage's revision of a
        worker's outcome, or the second of an item that Ray computed twice, replaces the first); with
        ``records``, reused ok rows get their record too."""
        table = self.read(stage)
        rows = _last_per_item(table.filter(pc.equal(table["run_id"], run_id)))
        if not records:
            return rows
        missing = pc.and_(rows["reused"], pc.equal(rows["status"], OK))
        if not pc.any(missing).as_py():
            return rows
        wanted = pc.unique(rows.filter(missing)["fingerprint"])
        sources = table.filter(pc.and_(pc.is_in(table["fingerprint"], wanted), pc.is_valid(table["record"])))
        by_fp = dict(zip(sources["fingerprint"].to_pylist(), sources["record"].to_pylist(), strict=True))
        filled = [rec if rec is not None else by_fp.get(fp)
                  for fp, rec in zip(rows["fingerprint"].to_pylist(), rows["record"].to_pylist(), strict=True)]
        index = rows.schema.get_field_index("record")
        return rows.set_column(index, "record", pa.array(filled, pa.string()))

    def latest_records(self, stage: str) -> tuple[str | None, list[dict]]:
        """The newest run that logged ``stage`` and the ok output records it ended with (reused ones too)."""
        runs = self.read(stage, ["run_id"])["run_id"]
        if len(runs) == 0:
            return None, []
        run_id = pc.max(runs).as_py()  # run ids sort by their start time
        rows = self.run_rows(stage, run_id, records=True)
        return run_id, [json.loads(r) for r in rows.filter(pc.equal(rows["status"], OK))["record"].to_pylist()]

    def compact(self, stage: str, fan_in: int = FAN_IN) -> None:
        """Merge every level that holds ``fan_in`` or more files into one file of the next level."""
        while True:
            live = self._live_files(stage)
            by_level: dict[int, list[str]] = {}
            for rel in live:
                by_level.setdefault(_level(rel.rsplit("/", 1)[1]), []).append(rel)
            full = sorted(level for level, files in by_level.items() if len(files) >= fan_in)
            if not full:
                return
            self._merge(stage, by_level[full[0]], full[0] + 1)

    def compact_all(self, stage: str) -> None:
        """Merge every live file of ``stage`` into one (tests and maintenance)."""
        live = self._live_files(stage)
        if len(live) > 1:
            self._merge(stage, live, max(_level(rel.rsplit("/", 1)[1]) for rel in live) + 1)

    def _merge(self, stage: str, files: list[str], level: int) -> None:
        # every file in the folder that is not live was absorbed already: naming it again keeps a
        # stale one (its deletion failed) from counting twice once its absorber is merged away
        everything = self.storage.list_files(self._dir(stage), ".parquet")
        live = set(self._live_files(stage))
        absorbed = sorted(rel.rsplit("/", 1)[1] for rel in everything if rel in files or rel not in live)
        table = self._read_files(files)
        rel = f"{self._dir(stage)}/merged-L{level}-{uuid.uuid4().hex}.parquet"
        self.storage.write_bytes(rel, _table_bytes(table, {_ABSORBED_KEY: json.dumps(absorbed).encode()}))
        for old in everything:
            if old.rsplit("/", 1)[1] in absorbed:
                self.storage.delete(old)


def _last_per_item(rows: pa.Table) -> pa.Table:
    """The row of each item with the latest ``finished_at`` (the later one on a tie), in that order."""
    if rows.num_rows == 0:
        return rows
    ordered = rows.sort_by("finished_at")
    position = pa.array(range(ordered.num_rows), pa.int64())
    last = (pa.table({"item_id": ordered["item_id"], "position": position})
            .group_by("item_id", use_threads=False).aggregate([("position", "max")])["position_max"])
    return ordered.take(pc.take(last, pc.sort_indices(last)))


def latest_run(storage: Storage) -> str | None:
    """The newest run id under the root (run ids sort by their start time)."""
    runs = storage.list_dirs("runs")
    return runs[-1] if runs else None


class LedgerWriter:
    """Buffers the rows of one run and appends them in parts of ``flush_rows``, or once the oldest
    buffered row is ``flush_seconds`` old.

    Parts are written by the driver only, so a stage's folder gains a part per few thousand items
    (not one per batch from every worker), and the tiered merge keeps the folder small during the run.
    The age check runs on every ``add`` and on every ``tick``, which the phase calls once a poll
    (``tick_s`` apart): a row is durable within ``flush_seconds`` of being added even when nothing
    else is added after it.
    """

    def __init__(self, ledger: Ledger, flush_rows: int = 5000, flush_seconds: float = 10.0,
                 tick_s: float = 1.0) -> None:
        self.ledger = ledger
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.tick_s = tick_s
        self._rows: dict[str, list[dict]] = {}
        self._tables: dict[str, list[pa.Table]] = {}
        self._pending = 0
        self._oldest: float | None = None  # monotonic time the oldest buffered row was added
        #: per stage, computed outcomes written so far by this writer: {"ok": n, "rejected": n}
        self.durable: dict[str, dict[str, int]] = {}

    def add(self, stage: str, rows: Iterable[dict]) -> None:
        """Rows as dicts (one outcome at a time, as the phase's output streams in)."""
        rows = list(rows)
        self._rows.setdefault(stage, []).extend(rows)
        self._added(len(rows))

    def add_table(self, stage: str, table: pa.Table) -> None:
        """Rows already in :data:`LEDGER_SCHEMA` (the driver's reuses, a whole stage at once)."""
        self._tables.setdefault(stage, []).append(table)
        self._added(table.num_rows)

    def _added(self, count: int) -> None:
        if count and self._oldest is None:
            self._oldest = time.monotonic()
        self._pending += count
        if self._pending >= self.flush_rows:
            self.flush()
        else:
            self.tick()

    def tick(self) -> None:
        """Flush when the oldest buffered row would pass ``flush_seconds`` before the next tick."""
        if self._oldest is not None and time.monotonic() - self._oldest >= self.flush_seconds - self.tick_s:
            self.flush()

    def flush(self) -> None:
        for stage in {*self._rows, *self._tables}:
            tables = self._tables.get(stage, [])
            if self._rows.get(stage):
                tables = [*tables, pa.Table.from_pylist(self._rows[stage], schema=LEDGER_SCHEMA)]
            if sum(t.num_rows for t in tables):
                table = pa.concat_tables(tables)
                self.ledger.append_table(stage, table)
                self.ledger.compact(stage)
                self._count(stage, table)
        self._rows, self._tables, self._pending, self._oldest = {}, {}, 0, None

    def _count(self, stage: str, table: pa.Table) -> None:
        computed = table.filter(pc.invert(table["reused"]))
        ok = int(pc.sum(pc.equal(computed["status"], OK)).as_py() or 0)
        counts = self.durable.setdefault(stage, {"ok": 0, "rejected": 0})
        counts["ok"] += ok
        counts["rejected"] += computed.num_rows - ok
