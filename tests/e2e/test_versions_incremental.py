"""Incremental builds: adding songs processes only the new ones; changing one stage's config re-runs
that stage and those after it; the same job builds the same version id; splits never move."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from songcorpus.pipeline import versions
from songcorpus.pipeline.jobfile import parse_job
from songcorpus.pipeline.runner import run_job
from songcorpus.pipeline.storage import Storage

REPO = Path(__file__).parents[2]
DEMO = REPO / "jobs" / "demo.toml"


def job_text(songs: int, max_seconds: float = 30.0) -> str:
    return (DEMO.read_text().replace("songs = 12", f"songs = {songs}")
            .replace("max_seconds = 30.0\ninstrumental", f"max_seconds = {max_seconds}\ninstrumental"))


def build(tmp_path: Path, text: str) -> tuple[dict, str]:
    result = run_job(parse_job(text, root=str(tmp_path / "out"), base=REPO), text)
    assert result.status == "completed" and result.report["accounting_closed"]
    stages = {s["name"]: s for s in result.report["stages"]}
    return stages, (tmp_path / "out" / "versions" / "LATEST").read_text()


def splits_of(storage: Storage, version: str) -> dict[str, str]:
    index = pq.read_table(storage.full(f"versions/{version}/index.parquet"))
    return dict(zip(index["song_id"].to_pylist(), index["split"].to_pylist(), strict=False))


@pytest.mark.timeout(1200)
def test_incremental_builds_reuse_everything_they_can(tmp_path, ray_cluster):
    storage = Storage(str(tmp_path / "out"))
    first_stages, first = build(tmp_path, job_text(3))
    assert first_stages["separate"]["computed"] == 3

    # same job again: nothing recomputed, the very same version
    again_stages, again = build(tmp_path, job_text(3))
    assert again == first and all(s["computed"] == 0 for s in again_stages.values())

    # one more song: only it is separated, aligned, segmented; earlier songs keep their split
    more_stages, more = build(tmp_path, job_text(4))
    assert more != first
    for stage in ("standardize", "separate", "align", "segment", "filter", "shard"):
        counts = more_stages[stage]
        assert counts["computed"] <= 1 and counts["reused"] == counts["input"] - counts["computed"], stage
    assert more_stages["separate"]["computed"] == 1
    old_splits, new_splits = splits_of(storage, first), splits_of(storage, more)
    assert all(new_splits[song] == split for song, split in old_splits.items())
    assert versions.load_manifest(storage, more)["parent"] == first

    # one stage's config changes: that stage and the ones after it re-run, nothing before
    cfg_stages, changed = build(tmp_path, job_text(4, max_seconds=20.0))
    assert [cfg_stages[s]["computed"] for s in ("standardize", "separate", "align")] == [0, 0, 0]
    assert cfg_stages["segment"]["computed"] == 4
    assert all(cfg_stages[s]["reused"] == 0 and cfg_stages[s]["computed"] == cfg_stages[s]["input"]
               for s in ("segment", "filter", "shard"))
    d = versions.diff(storage, more, changed)
    assert d["stages_changed"] == ["segment"]
    ledger_rows = pq.read_table(storage.full(f"versions/{changed}/index.parquet"))
    assert pc.max(ledger_rows["seconds"]).as_py() <= 20.0
