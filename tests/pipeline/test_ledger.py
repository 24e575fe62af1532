import pytest

from songcorpus.pipeline.ledger import FAN_IN, Ledger, LedgerWriter, outcome_row
from songcorpus.pipeline.storage import Storage
from songcorpus.schemas.records import OK, REJECTED, Outcome


def outcome(item: str, fp: str, status: str = OK, **kw) -> Outcome:
    return Outcome(item, fp, status, record={"x": item} if status == OK else None, finished_at=kw.pop("t", 0.0), **kw)


def test_append_read_and_priors(tmp_path):
    ledger = Ledger(Storage(str(tmp_path)))
    ledger.append("r1", "s", 1, [outcome("a", "fa"), outcome("b", "fb", REJECTED, reason="boom", retryable=True, t=1)])
    ledger.append("r2", "s", 1, [outcome("b", "fb", REJECTED, reason="boom", retryable=True, attempt=2, t=2)])
    ledger.append("r2", "s", 1, [outcome("a", "fa", reused=True, t=3)])
    assert ledger.read("s").num_rows == 4
    priors = ledger.priors("s")
    assert priors["fa"].status == OK and priors["fa"].attempts == 1  # a reuse is not an attempt
    assert priors["fb"].attempts == 2 and priors["fb"].retryable
    assert not priors["fb"].is_final(max_attempts=3)
    assert priors["fb"].is_final(max_attempts=2)


def test_a_runs_rows_are_each_items_last_a_revision_replacing_the_workers_outcome(tmp_path):
    ledger = Ledger(Storage(str(tmp_path)))
    ledger.append("r1", "s", 1, [outcome("b", "fb", t=5), outcome("a", "fa", t=1), outcome("c", "fc", t=2)])
    # the barrier's finalize found b to be a duplicate; Ray computed c a second time after a lost node
    ledger.append("r1", "s", 1, [outcome("b", "fb", REJECTED, reason="duplicate_audio", t=9),
                                 outcome("c", "fc", t=3)])
    ledger.append("r0", "s", 1, [outcome("a", "fa", REJECTED, reason="boom", t=0.5)])  # another run
    rows = ledger.run_rows("s", "r1").to_pylist()
    assert [(r["item_id"], r["status"], r["finished_at"]) for r in rows] == [
        ("a", OK, 1.0), ("c", OK, 3.0), ("b", REJECTED, 9.0)]


def test_deterministic_rejection_is_final():
    from songcorpus.pipeline.ledger import Prior

    prior = Prior(REJECTED, "too_long", "", retryable=False, attempts=1, audio_seconds=0)
    assert prior.is_final(max_attempts=5)


def test_compaction_keeps_every_row_once_even_if_deletes_never_happen(tmp_path, monkeypatch):
    storage = Storage(str(tmp_path))
    ledger = Ledger(storage)
    for i in range(5):
        ledger.append("r1", "s", 1, [outcome(f"i{i}", f"f{i}")])
    # a crash right after the compacted file is written: the old parts are never deleted
    monkeypatch.setattr(storage, "delete", lambda rel: None)
    ledger.compact_all("s")
    assert len(storage.list_files("ledger/s", ".parquet")) == 6
    assert sorted(ledger.read("s")["item_id"].to_pylist()) == [f"i{i}" for i in range(5)]
    monkeypatch.undo()
    ledger.append("r2", "s", 1, [outcome("i9", "f9")])
    ledger.compact_all("s")  # a second compaction absorbs the stale parts too
    assert len(storage.list_files("ledger/s", ".parquet")) == 1
    assert ledger.read("s").num_rows == 6


def test_a_long_run_keeps_the_ledger_folder_small_and_loses_no_row(tmp_path):
    """600 flushes of 2 rows: parts are merged tier by tier as they come, not only at the end."""
    storage = Storage(str(tmp_path))
    ledger = Ledger(storage)
    writer = LedgerWriter(ledger, flush_rows=2, flush_seconds=1e9)
    most_files = 0
    for i in range(1200):
        writer.add("s", [outcome_row("r1", "s", 1, outcome(f"i{i}", f"f{i}"))])
        most_files = max(most_files, len(storage.list_files("ledger/s", ".parquet")))
    writer.flush()
    # at most fan_in - 1 files per level after each merge: 600 parts need 4 levels of 8
    assert most_files <= 4 * (FAN_IN - 1) + 1
    table = ledger.read("s")
    assert table.num_rows == 1200 and len(set(table["item_id"].to_pylist())) == 1200
    assert ledger.priors("s")["f1199"].record == '{"x": "i1199"}'


def test_reused_rows_get_their_record_from_the_computed_row(tmp_path):
    ledger = Ledger(Storage(str(tmp_path)))
    ledger.append("r1", "s", 1, [outcome("a", "fa"), outcome("b", "fb", REJECTED, reason="bad")])
    ledger.append("r2", "s", 1, [outcome("a", "fa", reused=True), outcome("b", "fb", REJECTED, reason="bad",
                                                                          reused=True)])
    rows = {r["item_id"]: r for r in ledger.run_rows("s", "r2", records=True).to_pylist()}
    assert rows["a"]["record"] == '{"x": "a"}' and rows["b"]["record"] is None
    assert ledger.run_rows("s", "r2")["record"].to_pylist() == [None, None]  # stored once, in the computed row


def test_storage_refuses_paths_outside_root(tmp_path):
    storage = Storage(str(tmp_path))
    with pytest.raises(ValueError, match="outside the output root"):
        storage.write_bytes("../escape.txt", b"x")
    with pytest.raises(ValueError, match="outside the output root"):
        storage.write_bytes("/etc/passwd", b"x")


class _MoveFails:
    """A filesystem whose rename fails, as when the disk fills up between write and rename."""

    def __init__(self, fs):
        self._fs = fs

    def move(self, src, dst):
        raise OSError("disk full")

    def __getattr__(self, name):
        return getattr(self._fs, name)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    storage = Storage(str(tmp_path))
    storage.fs = _MoveFails(storage.fs)
    with pytest.raises(OSError, match="disk full"):
        storage.write_bytes("a/b.bin", b"data")
    assert list((tmp_path / "a").iterdir()) == []


def test_a_batched_stage_wall_time_spans_its_batch_not_the_per_item_share(tmp_path):
    from songcorpus.pipeline.report import stage_summary

    ledger = Ledger(Storage(str(tmp_path)))
    # one batch of four items computed from t=100 to t=108: each carries a 2 s share of the 8 s
    batch = [outcome(i, f"f{i}", seconds=2.0, started_at=100.0, t=108.0, audio_seconds=10.0) for i in "abcd"]
    # a row from a ledger written before started_at existed: its start is finished_at - seconds
    legacy = [outcome("e", "fe", seconds=3.0, t=111.0, audio_seconds=10.0)]
    ledger.append("r1", "s", 1, batch + legacy)
    summary = stage_summary("s", 1, ledger.read("s"))
    assert summary["wall_seconds"] == 11.0  # 100 -> 111, not 106 -> 111
    assert summary["busy_seconds"] == 11.0
    assert summary["audio_seconds_per_second"] == round(50 / 11, 3)
