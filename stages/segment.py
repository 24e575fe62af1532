"""segment: plan each song's clips from its alignment and vocal-activity envelope (see clip_planner)."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pyarrow as pa

from ..pipeline.stage import Reject, Result, Stage
from ..pipeline.storage import Storage, artifact_path
from ..schemas.song_records import AlignedSong, Alignment, SegmentedSong
from ..schemas.stage_configs import SegmentConfig
from .clip_planner import plan_clips
from .clip_report import clip_section

#: The artifact holding a song's :class:`~songcorpus.schemas.song_records.ClipPlan`.
CLIP_PLAN = "clip_plan.json"


class SegmentStage(Stage[SegmentConfig]):
    """One song in, its clip plan out (a clip_plan.json artifact); a song with no usable clip is rejected."""

    name = "segment"
    # 2: clip_plan.json (was clips.json), word key "word" (was "text"), times to the millisecond
    # 3: a clip reaches on to the vocal silence after its last line (an early word end no longer cuts it)
    version = 3

    def process(self, item_id: str, record: dict, fingerprint: str) -> Result:
        song = AlignedSong.model_validate(record)
        storage = self.context.storage
        alignment = Alignment.model_validate_json(storage.read_bytes(song.alignment))
        activity = np.load(io.BytesIO(storage.read_bytes(song.vocal_activity))).astype(np.float32)
        plan = plan_clips(song.song_id, song.duration, alignment.lines, activity, song.vocal_activity_frame_seconds,
                          self.config, silence_db=song.vocal_activity_threshold_db)
        dropped = Counter(reason for reason, _ in plan.dropped)
        if not plan.clips:
            detail = ", ".join(f"{r}: {n}" for r, n in sorted(dropped.items())) or "no aligned lines"
            raise Reject("no_clips", f"no clip could be planned ({detail})")
        rel = artifact_path(self.name, fingerprint, CLIP_PLAN)
        storage.write_bytes(rel, plan.model_dump_json().encode())
        out = SegmentedSong.extending(
            song, clip_plan=rel, clip_count=len(plan.clips), clip_seconds=sum(c.duration for c in plan.clips),
            segment_dropped=dict(sorted(dropped.items())),
        )
        return Result(out.model_dump(mode="json"), audio_seconds=song.duration)

    @classmethod
    def report_section(cls, rows: pa.Table, storage: Storage) -> dict | None:
        return clip_section(cls.name, "lines or spans", rows)
