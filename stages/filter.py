"""filter: quality rules over songs and clips, every drop counted by reason; writes the clips table.

Song rules reject the whole song (alignment coverage and score, vocal level); clip rules drop single
clips and count them as ``dropped_<reason>`` in the song's record, as datatrove counts its drops.
As a barrier stage it finally writes ``tables/clips.parquet`` (every kept clip, sorted by clip id)
and ``tables/clips_summary.json`` (clips per song, clip lengths, drops by reason) for the report.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..pipeline.stage import BarrierStage, Reject, Result
from ..pipeline.storage import Storage, artifact_path
from ..schemas.records import OK, Outcome
from ..schemas.song_records import Clip, ClipPlan, FilteredSong, KeptClips, SegmentedSong
from ..schemas.stage_configs import FilterConfig
from .clip_report import clip_section

#: The artifact holding a song's :class:`~songcorpus.schemas.song_records.KeptClips`.
KEPT_CLIPS = "kept_clips.json"
CLIPS_TABLE = "tables/clips.parquet"
CLIPS_SUMMARY = "tables/clips_summary.json"
CLIP_COLUMNS = ("clip_id", "song_id", "group", "language", "start", "end", "duration", "text", "words",
                "instrumental", "vocals", "accomp", "audio")


class FilterStage(BarrierStage[FilterConfig]):
    """Songs with planned clips in; the clips that pass every rule out."""

    name = "filter"
    version = 2  # 2: kept_clips.json (was clips.json); vocal activity measured at separate's own threshold

    def process(self, item_id: str, record: dict, fingerprint: str) -> Result:
        song = SegmentedSong.model_validate(record)
        cfg = self.config
        song_rules = (
            ("low_alignment_coverage", song.align.coverage, cfg.min_coverage),
            ("low_alignment_score", song.align.mean_score, cfg.min_align_score),
            ("quiet_vocals", song.vocal_to_accomp_db, cfg.min_vocal_to_accomp_db),
        )
        for reason, value, limit in song_rules:
            if value < limit:
                raise Reject(reason, f"{value:g} is below the configured minimum {limit:g}")
        storage = self.context.storage
        plan = ClipPlan.model_validate_json(storage.read_bytes(song.clip_plan))
        activity = np.load(io.BytesIO(storage.read_bytes(song.vocal_activity)))
        kept: list[Clip] = []
        dropped: Counter[str] = Counter()
        for clip in plan.clips:
            broken = self._clip_rule(clip, activity, song)
            if broken:
                dropped[f"dropped_{broken}"] += 1
            else:
                kept.append(clip)
        if not kept:
            detail = ", ".join(f"{r}: {n}" for r, n in sorted(dropped.items()))
            raise Reject("all_clips_filtered", f"no clip passed the rules ({detail})")
        rel = artifact_path(self.name, fingerprint, KEPT_CLIPS)
        storage.write_bytes(rel, KeptClips(clips=tuple(kept)).model_dump_json().encode())
        out = FilteredSong.extending(
            song, kept_clips=rel, clip_count=len(kept), clip_seconds=sum(c.duration for c in kept),
            filter_dropped=dict(sorted(dropped.items())),
        )
        return Result(out.model_dump(mode="json"), audio_seconds=out.clip_seconds)

    def _clip_rule(self, clip: Clip, activity: np.ndarray, song: SegmentedSong) -> str | None:
        """The first rule a clip breaks, or None. Vocal activity is judged as separate judged it."""
        cfg = self.config
        if clip.duration < cfg.min_clip_seconds:
            return "clip_too_short"
        if clip.duration > cfg.max_clip_seconds:
            return "clip_too_long"
        if clip.instrumental:
            return None
        scores = [w.score for w in clip.words]
        if scores and float(np.mean(scores)) < cfg.min_clip_score:
            return "low_clip_score"
        frame = song.vocal_activity_frame_seconds
        frames = activity[int(clip.start / frame) : int(np.ceil(clip.end / frame))]
        active = float(np.mean(frames > song.vocal_activity_threshold_db)) if frames.size else 0.0
        if active < cfg.min_clip_vocal_activity:
            return "little_vocal_activity"
        return None

    def finalize(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Write the clips table and its summary from every kept song (deterministic order)."""
        storage = self.context.storage
        kept: list[tuple[Clip, FilteredSong]] = []
        per_song: list[int] = []
        dropped: Counter[str] = Counter()
        for outcome in sorted((o for o in outcomes if o.status == OK), key=lambda o: o.item_id):
            song = FilteredSong.model_validate(outcome.record)
            dropped.update(song.segment_dropped)
            dropped.update(song.filter_dropped)
            clips = KeptClips.model_validate_json(storage.read_bytes(song.kept_clips)).clips
            per_song.append(len(clips))
            kept.extend((clip, song) for clip in clips)
        kept.sort(key=lambda pair: pair[0].clip_id)
        rows = [
            {
                "clip_id": clip.clip_id, "song_id": song.song_id, "group": song.group,
                "language": song.language, "start": clip.start, "end": clip.end, "duration": clip.duration,
                "text": clip.text, "words": json.dumps([w.model_dump() for w in clip.words], ensure_ascii=False),
                "instrumental": clip.instrumental, "vocals": song.vocals, "accomp": song.accomp,
                "audio": song.audio,
            }
            for clip, song in kept
        ]
        table = pa.Table.from_pylist(rows) if rows else pa.table({c: pa.array([], pa.string()) for c in CLIP_COLUMNS})
        sink = io.BytesIO()
        pq.write_table(table, sink)
        storage.write_bytes(CLIPS_TABLE, sink.getvalue())
        lengths = [clip.duration for clip, _ in kept]
        summary = {
            "clips": len(rows),
            "hours": round(sum(lengths) / 3600, 4),
            "songs": len(per_song),
            "clip_seconds": _histogram(lengths, np.arange(0, 32, 2.0)),
            "clips_per_song": _histogram(per_song, np.arange(0, max(per_song, default=0) + 2, 1.0)),
            "dropped": dict(sorted(dropped.items())),
        }
        storage.write_bytes(CLIPS_SUMMARY, json.dumps(summary, indent=2).encode())
        return outcomes


    @classmethod
    def report_section(cls, rows: pa.Table, storage: Storage) -> dict | None:
        """Kept clips and what the rules dropped, with the clip-length and clips-per-song histograms."""
        section = clip_section(cls.name, "clips", rows)
        if storage.exists(CLIPS_SUMMARY):
            summary = json.loads(storage.read_bytes(CLIPS_SUMMARY))
            section["histograms"] = [
                {"title": "Clip lengths", "xlabel": "clip length (seconds)", "ylabel": "clips", "id": "clip",
                 **summary["clip_seconds"]},
                {"title": "Clips per song", "xlabel": "clips in the song", "ylabel": "songs", "id": "cps",
                 **summary["clips_per_song"]},
            ]
        return section


def _histogram(values: Sequence[float], edges: np.ndarray) -> dict:
    counts, edges = np.histogram(np.asarray(values, dtype=float), bins=edges)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}
