"""segment, filter and shard on an oracle alignment (the synthetic truth) and the true stems and vocals envelope."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from songcorpus.pipeline.shards import read_samples
from songcorpus.pipeline.stage import Reject, StageContext
from songcorpus.pipeline.storage import Storage
from songcorpus.schemas.records import OK, Outcome
from songcorpus.schemas.sample import SAMPLE_SCHEMA_VERSION, SampleJson
from songcorpus.schemas.song_records import (
    AlignedLine,
    FilteredSong,
    KeptClips,
    SegmentedSong,
    ShardedSong,
    Word,
)
from songcorpus.schemas.stage_configs import FilterConfig, SegmentConfig, ShardConfig
from songcorpus.stages.audio_io import read_flac
from songcorpus.stages.audio_stats import frame_rms_db
from songcorpus.stages.filter import CLIPS_SUMMARY, CLIPS_TABLE, KEPT_CLIPS, FilterStage
from songcorpus.stages.segment import CLIP_PLAN, SegmentStage
from songcorpus.stages.shard import ShardStage
from songcorpus.synth.corpus import make_corpus
from tests.recordtools import aligned, alignment, ingested, separated, standardized


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus")
    make_corpus(corpus, 2, seed=11, min_seconds=55, max_seconds=70, workers=1)
    return corpus, [json.loads(p.read_text()) for p in sorted((corpus / "truth").glob("*.json"))]


def oracle_record(storage: Storage, corpus, truth: dict, song_id: str, **separate: object) -> dict:
    """What align and separate would hand over if they were perfect."""
    lines = tuple(
        AlignedLine(index=i, text=line["text"], start=line["start"], end=line["end"], score=1.0,
                    words=tuple(Word(word=w["word"], start=w["start"], end=w["end"], score=1.0)
                                for w in line["words"]))
        for i, line in enumerate(truth["lines"])
    )
    doc = alignment(lines)
    doc_path = storage.write_bytes(f"artifacts/align/{song_id}/alignment.json", doc.model_dump_json().encode())
    stems = {stem: storage.write_bytes(f"artifacts/separate/{song_id}/{stem}.flac",
                                       (corpus / truth["paths"][stem]).read_bytes()) for stem in ("vocals", "accomp")}
    vocals, rate = read_flac(storage.read_bytes(stems["vocals"]))
    buf = io.BytesIO()
    np.save(buf, frame_rms_db(vocals, rate, 0.02).astype(np.float16))
    activity = storage.write_bytes(f"artifacts/separate/{song_id}/vocal_activity.npy", buf.getvalue())
    song = standardized(ingested(song_id, group="g", title="Tïtle"), audio="mix.flac", duration=truth["duration"])
    song = separated(song, vocals=stems["vocals"], accomp=stems["accomp"], vocal_activity=activity, **separate)
    return aligned(song, doc_path, doc).model_dump(mode="json")


def test_segment_then_filter_write_a_clips_table_that_keeps_every_line(tmp_path, songs):
    corpus, truths = songs
    storage = Storage(str(tmp_path))
    context = StageContext(storage)
    segment, filter_ = SegmentStage(SegmentConfig(), context), FilterStage(FilterConfig(), context)
    outcomes = []
    for n, truth in enumerate(truths):
        record = oracle_record(storage, corpus, truth, f"song{n}")
        planned_record = segment.process(f"song{n}", record, f"seg{n}").record
        planned = SegmentedSong.model_validate(planned_record)
        assert planned.clip_count >= 2  # 55-70 s songs need more than one 30 s clip
        assert planned.clip_plan == f"artifacts/segment/seg{n}/{CLIP_PLAN}"
        kept_record = filter_.process(f"song{n}", planned_record, f"fil{n}").record
        kept = FilteredSong.model_validate(kept_record)
        assert kept.kept_clips == f"artifacts/filter/fil{n}/{KEPT_CLIPS}" and kept.clip_plan == planned.clip_plan
        outcomes.append(Outcome(f"song{n}", f"fil{n}", OK, record=kept_record))
    filter_.finalize(outcomes)
    table = pq.read_table(storage.full(CLIPS_TABLE)).to_pylist()
    assert [r["clip_id"] for r in table] == sorted(r["clip_id"] for r in table)
    assert all(r["duration"] <= 30.0 and "." not in r["clip_id"] for r in table)
    for n, truth in enumerate(truths):
        clips = [r for r in table if r["song_id"] == f"song{n}"]
        sung = "\n".join(r["text"] for r in clips).split("\n")
        assert sung == [line["text"] for line in truth["lines"]]  # every line once, in order, none split
        for clip in clips:
            words = json.loads(clip["words"])
            assert all(0 <= w["start"] <= w["end"] <= clip["duration"] + 1e-9 for w in words)
            assert [w["word"] for w in words] == clip["text"].replace("\n", " ").split()
            for t in (clip["start"], clip["end"], clip["duration"], *(w[k] for w in words for k in ("start", "end"))):
                assert t == round(t, 3)  # to the millisecond, no float noise
    summary = json.loads(storage.read_bytes(CLIPS_SUMMARY))
    assert summary["clips"] == len(table) and sum(summary["clip_seconds"]["counts"]) == len(table)


def test_song_rules_reject_with_their_reason(tmp_path, songs):
    corpus, truths = songs
    storage = Storage(str(tmp_path))
    record = oracle_record(storage, corpus, truths[0], "s")
    planned = SegmentStage(SegmentConfig(), StageContext(storage)).process("s", record, "seg").record
    strict = FilterStage(FilterConfig(min_coverage=1.0), StageContext(storage))
    with pytest.raises(Reject, match="below the configured minimum") as rejected:
        strict.process("s", {**planned, "align": {**planned["align"], "coverage": 0.4}}, "f")
    assert rejected.value.reason == "low_alignment_coverage"
    picky = FilterStage(FilterConfig(min_clip_seconds=29.9), StageContext(storage))
    with pytest.raises(Reject) as rejected:
        picky.process("s", planned, "f2")
    assert rejected.value.reason == "all_clips_filtered" and "dropped_clip_too_short" in rejected.value.message


def test_song_without_any_alignable_line_is_rejected(tmp_path, songs):
    corpus, truths = songs
    storage = Storage(str(tmp_path))
    record = oracle_record(storage, corpus, truths[0], "s")
    empty = storage.write_bytes("artifacts/align/none/alignment.json", alignment(()).model_dump_json().encode())
    with pytest.raises(Reject) as rejected:
        SegmentStage(SegmentConfig(), StageContext(storage)).process("s", {**record, "alignment": empty}, "seg")
    assert rejected.value.reason == "no_clips"


def test_filter_judges_vocal_activity_at_the_threshold_separate_used(tmp_path, songs):
    """At 0 dBFS no frame of the true vocals is active, so every lyric clip has too little vocal activity."""
    corpus, truths = songs
    storage = Storage(str(tmp_path))
    segment = SegmentStage(SegmentConfig(), StageContext(storage))
    filter_ = FilterStage(FilterConfig(min_clip_vocal_activity=0.1), StageContext(storage))
    usual = segment.process("s", oracle_record(storage, corpus, truths[0], "s"), "seg").record
    assert FilteredSong.model_validate(filter_.process("s", usual, "f1").record).filter_dropped == {}
    deaf = oracle_record(storage, corpus, truths[0], "s", vocal_activity_threshold_db=0.0)
    with pytest.raises(Reject) as rejected:
        filter_.process("s", segment.process("s", deaf, "seg2").record, "f2")
    assert rejected.value.reason == "all_clips_filtered" and "dropped_little_vocal_activity" in rejected.value.message


def test_a_record_with_a_missing_or_misspelt_key_is_refused_by_the_next_stage(tmp_path, songs):
    corpus, truths = songs
    storage = Storage(str(tmp_path))
    record = oracle_record(storage, corpus, truths[0], "s")
    segment = SegmentStage(SegmentConfig(), StageContext(storage))
    missing = {k: v for k, v in record.items() if k != "vocal_activity_threshold_db"}
    with pytest.raises(ValidationError, match="vocal_activity_threshold_db"):
        segment.process("s", missing, "seg")
    planned = segment.process("s", record, "seg").record
    misspelt = {("clips" if k == "clip_plan" else k): v for k, v in planned.items()}  # the key before the rename
    with pytest.raises(ValidationError, match="clip_plan") as refused:
        FilterStage(FilterConfig(), StageContext(storage)).process("s", misspelt, "f")
    assert "clips\n  Extra inputs are not permitted" in str(refused.value)


def test_shard_writes_sample_json_that_matches_its_schema_and_the_kept_clips(tmp_path, songs):
    corpus, truths = songs
    storage = Storage(str(tmp_path))
    context = StageContext(storage)
    planned = SegmentStage(SegmentConfig(), context).process("s", oracle_record(storage, corpus, truths[1], "s"), "seg")
    kept = FilteredSong.model_validate(FilterStage(FilterConfig(), context).process("s", planned.record, "fil").record)
    kept = kept.model_copy(update={"lineage": {"segment": "fp-seg", "filter": "fp-fil"}})  # as the engine adds it
    shard = ShardStage(ShardConfig(audio_members=("vocals", "accomp")), context)
    out = ShardedSong.model_validate(shard.process("s", kept.model_dump(mode="json"), "sh").record)
    clips = KeptClips.model_validate_json(storage.read_bytes(kept.kept_clips)).clips
    samples = dict(read_samples(storage.read_bytes(out.fragment)))
    assert list(samples) == [c.clip_id for c in clips] == [e.key for e in out.samples]
    vocals, rate = read_flac(storage.read_bytes(kept.vocals))
    for clip, entry in zip(clips, out.samples, strict=True):
        members = dict(samples[clip.clip_id])
        assert sorted(members) == ["accomp.flac", "json", "vocals.flac"]
        raw = json.loads(members["json"])
        sample = SampleJson.model_validate(raw)
        assert raw["schema_version"] == SAMPLE_SCHEMA_VERSION == sample.schema_version
        assert all(set(w) == {"word", "start", "end", "score"} for w in raw["words"])
        assert sample.words == clip.words and sample.lyrics == clip.text
        assert (sample.start, sample.end, sample.duration) == (clip.start, clip.end, entry.seconds)
        assert sample.duration == round(sample.end - sample.start, 3)
        assert (sample.title, sample.split, sample.sample_rate) == ("Tïtle", out.split, 44100)
        assert sample.lineage == {"segment": "fp-seg", "filter": "fp-fil"}
        for t in (raw["start"], raw["end"], raw["duration"], *(w[k] for w in raw["words"] for k in ("start", "end"))):
            assert t == round(t, 3)
        piece, _ = read_flac(members["vocals.flac"])
        assert np.array_equal(piece, vocals[:, round(clip.start * rate) : round(clip.end * rate)])
