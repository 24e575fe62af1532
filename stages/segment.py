"""segment: plan each song's clips from its alignment and vocal-activity envelope (see clip_planner)."""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import asdict

import numpy as np
import pyarrow as pa

from ..pipeline.stage import Reject, Result, Stage
from ..pipeline.storage import Storage, artifact_path
from ..schemas.stage_configs import SegmentConfig
from .clip_planner import AlignedLine, AlignedWord, ClipPlanConfig, plan_clips
from .clip_report import clip_section

NAN = float("nan")


def aligned_lines(alignment: dict) -> list[AlignedLine]:
    """The align stage's lines as planner input; unaligned lines keep NaN times (the planner drops them)."""
    lines = []
    for line in alignment["lines"]:
        words = tuple(AlignedWord(w["word"], w["start"], w["end"], w["score"]) for w in line["words"])
        start, end = line["start"], line["end"]
        lines.append(AlignedLine(
            line["index"], line["text"], NAN if start is None else start, NAN if end is None else end,
            line["score"] or 0.0, words,
        ))
    return lines


class SegmentStage(Stage[SegmentConfig]):
    """One song in, its clip plan out (a clips.json artifact); a song with no usable clip is rejected."""

    name = "segment"
    version = 1
    config_type = SegmentConfig

    def process(self, item_id: str, record: dict, fingerprint: str) -> Result:
        storage = self.context.storage
        alignment = json.loads(storage.read_bytes(record["alignment"]))
        activity = np.load(io.BytesIO(storage.read_bytes(record["vocal_activity"]))).astype(np.float32)
        cfg = self.config
        plan = plan_clips(
            record["song_id"], record["duration"], aligned_lines(alignment), activity,
            record["vocal_activity_frame_seconds"],
            ClipPlanConfig(
                max_seconds=cfg.max_seconds, min_seconds=cfg.min_seconds, pad_seconds=cfg.pad_seconds,
                instrumental=cfg.instrumental, instrumental_cap_seconds=cfg.instrumental_cap_seconds,
                min_gap_seconds=cfg.min_gap_seconds,
            ),
        )
        dropped = Counter(reason for reason, _ in plan.dropped)
        if not plan.clips:
            detail = ", ".join(f"{r}: {n}" for r, n in sorted(dropped.items())) or "no aligned lines"
            raise Reject("no_clips", f"no clip could be planned ({detail})")
        clips = [asdict(clip) for clip in plan.clips]
        rel = artifact_path(self.name, fingerprint, "clips.json")
        storage.write_bytes(rel, json.dumps({"clips": clips, "dropped": plan.dropped}, ensure_ascii=False).encode())
        return Result(
            {**record, "clips": rel, "clip_count": len(clips),
             "clip_seconds": round(sum(c["end"] - c["start"] for c in clips), 3),
             "segment_dropped": dict(sorted(dropped.items()))},
            audio_seconds=record["duration"],
        )

    @classmethod
    def report_section(cls, rows: pa.Table, storage: Storage) -> dict | None:
        return clip_section(cls.name, "lines or spans", rows)
