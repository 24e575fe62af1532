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

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..pipeline.stage import Reject, Result, Stage
from ..pipeline.storage import Storage, artifact_path
from ..schemas.records import OK, Outcome
from ..schemas.stage_configs import FilterConfig
from .clip_report import clip_section

CLIPS_TABLE = "tables/clips.parquet"
CLIPS_SUMMARY = "tables/clips_summary.json"
CLIP_COLUMNS = ("clip_id", "song_id", "group", "language", "start", "end", "duration", "text", "words",
                "instrumental", "vocals", "accomp", "audio")


class FilterStage(Stage[FilterConfig]):
    """Songs with planned clips in; the clips that pass every rule out."""

    name = "filter"
    version = 1
    config_type = FilterConfig
    barrier = True

    def process(self, item_id: str, record: dict, fingerprint: str) -> Result:
        cfg = self.config
        song_rules = (
            ("low_alignment_coverage", record["align_coverage"], cfg.min_coverage),
            ("low_alignment_score", record["align_mean_score"], cfg.min_align_score),
            ("quiet_vocals", record["vocal_to_accomp_db"], cfg.min_vocal_to_accomp_db),
        )
        for reason, value, limit in song_rules:
            if value < limit:
                raise Reject(reason, f"{value:g} is below the configured minimum {limit:g}")
        storage = self.context.storage
        clips = json.loads(storage.read_bytes(record["clips"]))["clips"]
        activity = np.load(io.BytesIO(storage.read_bytes(record["vocal_activity"])))
        kept, dropped = [], Counter()
        for clip in clips:
            reason = self._clip_rule(clip, activity, record["vocal_activity_frame_seconds"])
            if reason:
                dropped[f"dropped_{reason}"] += 1
            else:
                kept.append(clip)
        if not kept:
            detail = ", ".join(f"{r}: {n}" for r, n in sorted(dropped.items()))
            raise Reject("all_clips_filtered", f"no clip passed the rules ({detail})")
        rel = artifact_path(self.name, fingerprint, "clips.json")
        storage.write_bytes(rel, json.dumps({"clips": kept}, ensure_ascii=False).encode())
        return Result(
            {**record, "clips": rel, "clip_count": len(kept),
             "clip_seconds": round(sum(c["end"] - c["start"] for c in kept), 3),
             "filter_dropped": dict(sorted(dropped.items()))},
            audio_seconds=sum(c["end"] - c["start"] for c in kept),
        )

    def _clip_rule(self, clip: dict, activity: np.ndarray, frame: float) -> str | None:
        """The first rule a clip breaks, or None."""
        cfg = self.config
        length = clip["end"] - clip["start"]
        if length < cfg.min_clip_seconds:
            return "clip_too_short"
        if length > cfg.max_clip_seconds:
            return "clip_too_long"
        if clip["instrumental"]:
            return None
        scores = [w["score"] for w in clip["words"]]
        if scores and float(np.mean(scores)) < cfg.min_clip_score:
            return "low_clip_score"
        frames = activity[int(clip["start"] / frame) : int(np.ceil(clip["end"] / frame))]
        active = float(np.mean(frames > -40.0)) if frames.size else 0.0
        if active < cfg.min_clip_vocal_activity:
            return "little_vocal_activity"
        return None

    def finalize(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Write the clips table and its summary from every kept song (deterministic order)."""
        storage = self.context.storage
        rows, per_song, dropped = [], [], Counter()
        for outcome in sorted((o for o in outcomes if o.status == OK), key=lambda o: o.item_id):
            record = outcome.record
            dropped.update(record.get("segment_dropped", {}))
            dropped.update(record.get("filter_dropped", {}))
            clips = json.loads(storage.read_bytes(record["clips"]))["clips"]
            per_song.append(len(clips))
            for clip in clips:
                rows.append({
                    "clip_id": clip["clip_id"], "song_id": record["song_id"], "group": record["group"],
                    "language": record.get("language"), "start": clip["start"], "end": clip["end"],
                    "duration": round(clip["end"] - clip["start"], 6), "text": clip["text"],
                    "words": json.dumps(clip["words"], ensure_ascii=False), "instrumental": clip["instrumental"],
                    "vocals": record["vocals"], "accomp": record["accomp"], "audio": record["audio"],
                })
        rows.sort(key=lambda r: r["clip_id"])
        table = pa.Table.from_pylist(rows) if rows else pa.table({c: pa.array([], pa.string()) for c in CLIP_COLUMNS})
        sink = io.BytesIO()
        pq.write_table(table, sink)
        storage.write_bytes(CLIPS_TABLE, sink.getvalue())
        lengths = [r["duration"] for r in rows]
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


def _histogram(values: list[float], edges: np.ndarray) -> dict:
    counts, edges = np.histogram(np.asarray(values, dtype=float), bins=edges)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}
