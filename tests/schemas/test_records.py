"""The typed stage records and the sample JSON: JSON round trips, millisecond times, strict keys, and
docs/reading.md's description of the sample JSON checked against the schema both ways."""

from __future__ import annotations

import inspect
import json
import math
import re
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from songcorpus.pipeline.references import MIN_PREFIX
from songcorpus.schemas import sample, song_records
from songcorpus.schemas.sample import SAMPLE_SCHEMA_VERSION, SampleJson
from songcorpus.schemas.song_records import (
    AlignedLine,
    AlignmentSummary,
    AudioLevels,
    Clip,
    ClipPlan,
    FilteredSong,
    KeptClips,
    SampleEntry,
    SegmentedSong,
    ShardedSong,
    TokenizedSong,
    Word,
)
from tests.recordtools import aligned, alignment, ingested, separated, standardized

READING = Path(__file__).parents[2] / "docs" / "reading.md"


def word(text: str, start: float, end: float) -> Word:
    return Word(word=text, start=start, end=end, score=0.8)


def examples() -> list[BaseModel]:
    """One instance of every record type, built as the stages build them, with awkward values."""
    words = (word("naïve", 2.13, 2.46), word("two", 2.46, 2.9))
    lines = (AlignedLine(index=0, text="naïve two", start=2.13, end=2.9, score=0.8, words=words),
             AlignedLine(index=1, text="lost", start=None, end=None, score=None))
    doc = alignment(lines, notes=("dropped [chorus]",))
    first = ingested("s1", artist="A", extra={"truth_path": "t.json", "x": None})
    decoded = standardized(first, audio="a.flac", duration=12.5)
    stems = separated(decoded, vocals="v.flac", vocal_activity="v.npy", stem_scale=0.5)
    song = aligned(stems, "alignment.json", doc)
    clip = Clip(clip_id="s1-0000", start=1.88, end=3.15, line_indices=(0,), text="naïve two",
                words=tuple(word(w.word, w.start - 1.88, w.end - 1.88) for w in words), instrumental=False)
    outro = Clip(clip_id="s1-0001", start=3.15, end=12.5, line_indices=(), text="", words=(), instrumental=True)
    plan = ClipPlan(clips=(clip, outro), dropped=(("line_unaligned", "line 1 (no times) was not aligned: 'lost'"),))
    planned = SegmentedSong.extending(song, clip_plan="clip_plan.json", clip_count=2, clip_seconds=10.62,
                                      segment_dropped={"line_unaligned": 1})
    kept = FilteredSong.extending(planned, kept_clips="kept_clips.json", clip_count=1, clip_seconds=clip.duration,
                                  filter_dropped={"dropped_clip_too_short": 1}, lineage={"filter": "f" * 32})
    tokenized = TokenizedSong.extending(kept, tokens="tokens.npz", token_rate=50.0, token_codes=256,
                                        tokenizer="tokenizer-0123456789abcdef")
    entry = SampleEntry(key=clip.clip_id, seconds=clip.duration, sha256="e" * 64, bytes=1234)
    sharded = ShardedSong(song_id="s1", split="train", fragment="samples.tar", samples=(entry,), language=None)
    sample_json = SampleJson(
        clip_id=clip.clip_id, song_id="s1", group="A", language="en", title=None, artist="A", split="train",
        start=clip.start, end=clip.end, duration=clip.duration, sample_rate=44100, lyrics=clip.text, words=clip.words,
        instrumental=False, stem_scale=0.5, lineage={"segment": "s" * 32},
    )
    summary = AlignmentSummary(**doc.model_dump(exclude={"lines"}))
    levels = AudioLevels(loudness_lufs=None, peak_dbfs=-0.1, clipping_ratio=0.0, silence_ratio=0.2)
    return [first, levels, decoded, stems, song, doc, summary, *lines, *words, clip, plan, KeptClips(clips=(clip,)),
            planned, kept, tokenized, entry, sharded, sample_json]


def record_types() -> set[type[BaseModel]]:
    """Every model that schemas/song_records.py and schemas/sample.py define."""
    return {cls for module in (song_records, sample) for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, BaseModel) and cls.__module__ == module.__name__ and cls is not song_records.StageRecord}


def test_every_record_type_has_a_round_trip_example() -> None:
    assert {type(e) for e in examples()} == record_types()


@pytest.mark.parametrize("record", examples(), ids=lambda r: type(r).__name__)
def test_dump_to_json_and_validate_gives_the_same_record(record: BaseModel) -> None:
    text = json.dumps(record.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    back = type(record).model_validate(json.loads(text))
    assert back == record
    assert json.dumps(back.model_dump(mode="json"), sort_keys=True, ensure_ascii=False) == text


def test_times_are_rounded_to_the_millisecond_when_a_record_is_built() -> None:
    w = word("x", 2.46 - 2.13, 5.33 - 5.0)  # 0.33000000000000007 in floating point
    assert (w.start, w.end) == (0.33, 0.33) and json.dumps(w.model_dump()) == (
        '{"word": "x", "start": 0.33, "end": 0.33, "score": 0.8}')
    clip = Clip(clip_id="s-0000", start=1.0004, end=4.00049, line_indices=(), text="", words=(), instrumental=True)
    assert (clip.start, clip.end, clip.duration) == (1.0, 4.0, 3.0)
    for bad in (math.nan, math.inf):
        with pytest.raises(ValidationError, match="finite number"):
            word("x", bad, 1.0)


def test_a_missing_or_unknown_key_is_refused() -> None:
    record = ingested("s1").model_dump(mode="json")
    with pytest.raises(ValidationError, match="content_sha256\n  Field required"):
        song_records.IngestedSong.model_validate({k: v for k, v in record.items() if k != "content_sha256"})
    with pytest.raises(ValidationError, match="lyric\n  Extra inputs are not permitted"):
        song_records.IngestedSong.model_validate({**record, "lyric": "typo"})
    with pytest.raises(ValidationError, match="text\n  Extra inputs"):  # the key samples carried before
        Word.model_validate({"text": "la", "start": 0.0, "end": 0.5, "score": 1.0})
    with pytest.raises(ValidationError, match="song_id"):
        song_records.IngestedSong.model_validate({**record, "song_id": "a.b"})  # clip ids hold no dots


# --- docs/reading.md -------------------------------------------------------------------------------


def _json_type(prop: dict) -> str:
    if "anyOf" in prop:
        return " or ".join(_json_type(p) for p in prop["anyOf"])
    if "$ref" in prop:
        return "object"
    if prop["type"] == "array":
        return f"array of {_json_type(prop['items'])}"
    return prop["type"]


def schema_rows(model: type[BaseModel]) -> list[tuple[str, str, str]]:
    """(field, JSON type, meaning) per field, as the docs table must show them."""
    return [(f"`{name}`", _json_type(prop), prop["description"])
            for name, prop in model.model_json_schema()["properties"].items()]


def docs_tables() -> list[list[tuple[str, ...]]]:
    """The rows of each three-column table in the docs' "The sample JSON" section (cells as written)."""
    text = READING.read_text(encoding="utf-8")
    section = text.split("\n## The sample JSON\n", 1)[1].split("\n## ", 1)[0]
    tables: list[list[tuple[str, ...]]] = []
    current: list[tuple[str, ...]] = []
    for line in [*section.splitlines(), ""]:
        if line.startswith("|"):
            current.append(tuple(cell.strip() for cell in line.strip().strip("|").split(" | ")))
        elif current:
            tables.append(list(current[2:]))  # skip the header and its --- line
            current = []
    return tables


@pytest.mark.parametrize(("index", "model"), [(0, SampleJson), (1, Word)], ids=["sample", "words"])
def test_the_docs_describe_exactly_the_schema(index: int, model: type[BaseModel]) -> None:
    documented, schema = docs_tables()[index], schema_rows(model)
    in_docs_only = [row for row in documented if row not in schema]
    in_schema_only = [row for row in schema if row not in documented]
    assert not in_docs_only and not in_schema_only, (
        f"docs/reading.md and {model.__name__} differ; documented but not so in the schema: {in_docs_only}; "
        f"in the schema but not so in the docs (paste these rows): "
        + "".join(f"\n| {f} | {t} | {m} |" for f, t, m in in_schema_only)
    )
    assert [row[0] for row in documented] == [row[0] for row in schema]  # and in the same order


def test_the_docs_name_the_schema_version_and_the_id_prefix_length() -> None:
    text = READING.read_text(encoding="utf-8")
    assert re.search(rf"layout `schema_version` {SAMPLE_SCHEMA_VERSION}\b", text)
    assert f"id prefix (≥ {MIN_PREFIX} chars)" in text
