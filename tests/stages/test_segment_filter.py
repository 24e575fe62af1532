"""segment and filter stages on an oracle alignment (the synthetic truth) and the true vocals envelope."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from songcorpus.pipeline.stage import Reject, StageContext
from songcorpus.pipeline.storage import Storage
from songcorpus.schemas.records import OK, Outcome
from songcorpus.schemas.stage_configs import FilterConfig, SegmentConfig
from songcorpus.stages.audio_io import read_flac
from songcorpus.stages.audio_stats import frame_rms_db
from songcorpus.stages.filter import CLIPS_SUMMARY, CLIPS_TABLE, FilterStage
from songcorpus.stages.segment import SegmentStage
from songcorpus.synth.corpus import make_corpus


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus")
    make_corpus(corpus, 2, seed=11, min_seconds=55, max_seconds=70, workers=1)
    return corpus, [json.loads(p.read_text()) for p in sorted((corpus / "truth").glob("*.json"))]


def oracle_record(storage: Storage, corpus, truth: dict, song_id: str) -> dict:
    """What align and separate would hand over if they were perfect."""
    lines = [
        {"index": i, "text": line["text"], "start": line["start"], "end": line["end"], "score": 1.0,
         "words": [{"word": w["word"], "start": w["start"], "end": w["end"], "score": 1.0} for w in line["words"]]}
        for i, line in enumerate(truth["lines"])
    ]
    alignment = storage.write_bytes(f"artifacts/align/{song_id}/alignment.json", json.dumps({"lines": lines}).encode())
    vocals, rate = read_flac((corpus / truth["paths"]["vocals"]).read_bytes())
    buf = io.BytesIO()
    np.save(buf, frame_rms_db(vocals, rate, 0.02).astype(np.float16))
    activity = storage.write_bytes(f"artifacts/separate/{song_id}/vocal_activity.npy", buf.getvalue())
    return {
        "song_id": song_id, "group": "g", "language": "en", "duration": truth["duration"], "alignment": alignment,
        "vocal_activity": activity, "vocal_activity_frame_seconds": 0.02, "align_coverage": 1.0,
        "align_mean_score": 1.0, "vocal_to_accomp_db": 0.0, "vocals": "v", "accomp": "a", "audio": "m",
    }


def test_segment_then_filter_write_a_clips_table_that_keeps_every_line(tmp_path, songs):
    corpus, truths = songs
    storage = Storage(str(tmp_path))
    context = StageContext(storage)
    segment, filter_ = SegmentStage(SegmentConfig(), context), FilterStage(FilterConfig(), context)
    outcomes = []
    for n, truth in enumerate(truths):
        record = oracle_record(storage, corpus, truth, f"song{n}")
        planned = segment.process(f"song{n}", record, f"seg{n}").record
        assert planned["clip_count"] >= 2  # 55-70 s songs need more than one 30 s clip
        kept = filter_.process(f"song{n}", planned, f"fil{n}").record
        outcomes.append(Outcome(f"song{n}", f"fil{n}", OK, record=kept))
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
            assert all(0 <= w["start"] <= w["end"] <= clip["duration"] + 1e-6 for w in words)
    summary = json.loads(storage.read_bytes(CLIPS_SUMMARY))
    assert summary["clips"] == len(table) and sum(summary["clip_seconds"]["counts"]) == len(table)


def test_song_rules_reject_with_their_reason(tmp_path, songs):
    corpus, truths = songs
    storage = Storage(str(tmp_path))
    record = oracle_record(storage, corpus, truths[0], "s")
    planned = SegmentStage(SegmentConfig(), StageContext(storage)).process("s", record, "seg").record
    strict = FilterStage(FilterConfig(min_coverage=1.0), StageContext(storage))
    with pytest.raises(Reject, match="below the configured minimum") as rejected:
        strict.process("s", {**planned, "align_coverage": 0.4}, "f")
    assert rejected.value.reason == "low_alignment_coverage"
    picky = FilterStage(FilterConfig(min_clip_seconds=29.9), StageContext(storage))
    with pytest.raises(Reject) as rejected:
        picky.process("s", planned, "f2")
    assert rejected.value.reason == "all_clips_filtered" and "dropped_clip_too_short" in rejected.value.message


def test_song_without_any_alignable_line_is_rejected(tmp_path, songs):
    corpus, truths = songs
    storage = Storage(str(tmp_path))
    record = oracle_record(storage, corpus, truths[0], "s")
    empty = storage.write_bytes("artifacts/align/none/alignment.json", json.dumps({"lines": []}).encode())
    with pytest.raises(Reject) as rejected:
        SegmentStage(SegmentConfig(), StageContext(storage)).process("s", {**record, "alignment": empty}, "seg")
    assert rejected.value.reason == "no_clips"
