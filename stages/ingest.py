"""ingest: validate each manifest row, hash and probe its audio, read its lyrics, find duplicates."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ..pipeline.fingerprint import digest
from ..pipeline.stage import BarrierStage, Reject, Result, Source, SourceStage
from ..pipeline.storage import Storage, resolve_filesystem
from ..schemas.job import InputSpec
from ..schemas.records import OK, REJECTED, Outcome
from ..schemas.song_records import SONG_ID_PATTERN, IngestedSong
from ..schemas.stage_configs import IngestConfig
from .audio_io import probe_audio
from .sources import read_input

SONG_ID = re.compile(SONG_ID_PATTERN)
LRC_TIMESTAMP = re.compile(r"^\s*\[\d{1,3}:\d{1,2}(?:[.:]\d{1,3})?\]", re.MULTILINE)
DUPLICATE = "duplicate_audio"


def resolve_inside(base: str, rel: str, what: str) -> str:
    """Absolute path of ``rel`` under ``base``; a path that leaves ``base`` is rejected."""
    if "://" in rel:
        return rel
    base_path = Path(base).resolve()
    target = (base_path / rel).resolve()
    if not target.is_relative_to(base_path):
        raise Reject(f"{what}_outside_input_root", f"{rel!r} resolves outside the input root {base_path}")
    return str(target)


def read_file(path: str, what: str, max_bytes: int) -> bytes:
    fs, inner = resolve_filesystem(path)
    info = fs.get_file_info(inner)
    if info.type.name == "NotFound":
        raise Reject(f"missing_{what}_file", f"{what} file not found: {path}")
    if info.type.name != "File":
        raise Reject(f"{what}_not_a_file", f"{what} path is not a regular file: {path}")
    if info.size == 0:
        raise Reject(f"empty_{what}_file", f"{what} file is empty (0 bytes): {path}")
    if info.size > max_bytes:
        raise Reject(f"{what}_file_too_large", f"{what} file has {info.size} bytes, limit {max_bytes}: {path}")
    with fs.open_input_stream(inner) as src:
        return src.read()


def decode_lyrics(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Reject("lyrics_not_utf8", f"lyrics are not UTF-8 text (byte {exc.start}): re-save as UTF-8") from None
    if "\x00" in text:
        raise Reject("lyrics_binary", "lyrics contain NUL bytes: this is not a text file")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _text(value: object) -> str | None:
    """A manifest value as text: CSV and JSON readers turn an all-digit column into numbers."""
    return None if value is None else str(value)


class IngestStage(SourceStage[IngestConfig], BarrierStage[IngestConfig]):
    """Per manifest row: path checks, content hash, FFmpeg probe, lyrics; then duplicates across rows."""

    name = "ingest"
    version = 2  # 2: manifest text columns read as numbers (an artist named 311) are recorded as text
    recheck_reasons = frozenset({DUPLICATE})

    @classmethod
    def read_source(cls, job_input: InputSpec, storage: Storage) -> Source:
        return read_input(job_input, storage)

    def process(self, item_id: str, record: dict, fingerprint: str) -> Result:
        base = self.context.input_base or "."
        if not record.get("audio_path"):
            raise Reject("missing_audio_path", "the manifest row has no audio_path")
        audio_path = resolve_inside(base, record["audio_path"], "audio")
        data = read_file(audio_path, "audio", self.config.max_file_bytes)
        probe = probe_audio(data)
        lyrics = self._lyrics(record, base)
        sha = hashlib.sha256(data).hexdigest()
        song_id = record.get("song_id") or f"s{sha[:16]}"
        if not SONG_ID.match(str(song_id)):
            raise Reject("bad_song_id", f"song_id {song_id!r} must be 1-128 of [A-Za-z0-9_-] (no dots)")
        artist = _text(record.get("artist"))
        out = IngestedSong(
            song_id=str(song_id),
            row_index=record["row_index"],
            source_path=audio_path,
            content_sha256=sha,
            size_bytes=len(data),
            codec=probe.codec,
            container=probe.container,
            source_sample_rate=probe.sample_rate,
            source_channels=probe.channels,
            source_duration=probe.duration,
            lyrics=lyrics,
            lyrics_format="lrc" if LRC_TIMESTAMP.search(lyrics) else "text",
            language=_text(record.get("language")),
            artist=artist,
            title=_text(record.get("title")),
            group=_text(record.get("group")) or artist or str(song_id),
            extra=record.get("extra") or {},
        )
        return Result(out.model_dump(mode="json"), audio_seconds=probe.duration or 0.0)

    def _lyrics(self, record: dict, base: str) -> str:
        if record.get("lyrics_path"):
            path = resolve_inside(base, record["lyrics_path"], "lyrics")
            text = decode_lyrics(read_file(path, "lyrics", self.config.max_lyrics_bytes))
        else:
            text = record.get("lyrics") or ""
            if len(text.encode()) > self.config.max_lyrics_bytes:
                raise Reject("lyrics_file_too_large", f"inline lyrics exceed {self.config.max_lyrics_bytes} bytes")
        if self.config.require_lyrics and not text.strip():
            raise Reject("empty_lyrics", "the song has no lyrics (set stages.ingest.require_lyrics = false to allow)")
        return text

    def hand_off(self, item_id: str, fingerprint: str, record: dict) -> tuple[str, str]:
        """Downstream work depends on the song's content and lyrics, not on where the file was."""
        identity = {k: record[k] for k in ("song_id", "content_sha256", "lyrics", "language")}
        return record["song_id"], digest(identity)

    def finalize(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Reject exact audio duplicates and reused song ids; the earliest manifest row wins."""
        first_by_hash: dict[str, dict] = {}
        first_by_id: dict[str, dict] = {}
        ok: list[tuple[Outcome, dict]] = []
        for o in outcomes:
            if o.status == OK:
                assert o.record is not None, f"{o.item_id}: an ok outcome carries its output record"
                ok.append((o, o.record))
        ok.sort(key=lambda pair: pair[1]["row_index"])
        for o, rec in ok:
            original = first_by_hash.get(rec["content_sha256"])
            if original is not None:
                self._reject(o, DUPLICATE, f"same audio as {original['song_id']} ({original['source_path']})")
                continue
            if rec["song_id"] in first_by_id:
                clash = first_by_id[rec["song_id"]]
                self._reject(o, "duplicate_song_id", f"song_id {rec['song_id']} already used by {clash['source_path']}")
                continue
            first_by_hash[rec["content_sha256"]] = rec
            first_by_id[rec["song_id"]] = rec
        return outcomes

    @staticmethod
    def _reject(outcome: Outcome, reason: str, message: str) -> None:
        outcome.status, outcome.reason, outcome.message = REJECTED, reason, message
        outcome.record, outcome.retryable = None, False
        outcome.audio_seconds = 0.0
