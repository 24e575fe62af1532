"""The shipped demo job, shrunk to four songs: synth -> ingest -> standardize -> separate -> align ->
segment -> filter, with the offline tiny models loaded through Demucs' and WhisperX' own loaders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from songcorpus.cli import main as cli_main
from songcorpus.pipeline import versions
from songcorpus.pipeline.dataset_reader import open_dataset
from songcorpus.pipeline.ledger import Ledger
from songcorpus.pipeline.runner import run_job
from songcorpus.pipeline.storage import Storage
from songcorpus.stages.audio_io import read_flac

REPO = Path(__file__).parents[2]
DEMO = REPO / "jobs" / "demo.toml"


def check_round_trip(storage: Storage, version: str, clips) -> None:
    """Every kept clip comes back from the shards once, with its lyrics, timings and exact audio."""
    manifest = versions.load_manifest(storage, version)
    assert versions.verify(storage, version) == []
    by_id = {row["clip_id"]: row for row in clips.to_pylist()}
    seen = []
    for split in manifest["splits"]["fractions"]:
        if not manifest["splits"]["samples"].get(split):
            continue
        for sample in open_dataset(version, split, root=storage.root):
            clip = by_id[sample["key"]]
            seen.append(sample["key"])
            assert sample["json"]["lyrics"] == clip["text"] and sample["json"]["split"] == split
            assert sample["json"]["words"] == json.loads(clip["words"])
            mix, rate = read_flac(storage.read_bytes(clip["audio"]))
            piece = mix[:, round(clip["start"] * rate) : round(clip["end"] * rate)]
            assert sample["mix_rate"] == rate and np.array_equal(sample["mix"].numpy(), piece)
    assert sorted(seen) == sorted(by_id)


def check_no_clip_cuts_a_line(storage: Storage, clips, truth_dir: Path) -> int:
    """Every line in every kept clip lies wholly inside it, by the synthetic truth; returns the lines checked."""
    kept = set(clips["clip_id"].to_pylist())
    checked = 0
    for record in Ledger(storage).latest_records("segment")[1]:
        truth = json.loads((truth_dir / record["extra"]["truth_path"]).read_text())["lines"]
        plan = json.loads(storage.read_bytes(record["clip_plan"]))
        for clip in (c for c in plan["clips"] if c["clip_id"] in kept):
            for index in clip["line_indices"]:
                line = truth[index]
                assert clip["start"] <= line["start"] and line["end"] <= clip["end"], (
                    f"{clip['clip_id']} ({clip['start']}-{clip['end']} s) cuts line {index} "
                    f"({line['start']}-{line['end']} s): {line['text']!r}")
                checked += 1
    return checked


@pytest.mark.timeout(900)
def test_demo_job_runs_resumes_and_evaluates(demo_run, capsys):
    job, text, first, tmp_path = demo_run.job, demo_run.text, demo_run.result, demo_run.root.parent
    report = first.report
    assert first.status == "completed" and report["accounting_closed"]
    # the first lines say which trained models made the stems and timings, and what they are good for
    assert [n.split(" used model ")[0] for n in report["notices"][:2]] == ["separate", "align"]
    assert all("synthetic songs only" in n for n in report["notices"][:2])
    stages = {s["name"]: s for s in report["stages"]}
    assert [stages[n]["ok"] for n in ("ingest", "standardize", "separate", "align", "segment")] == [4] * 5
    clips = pq.read_table(tmp_path / "out" / "tables" / "clips.parquet")
    assert stages["filter"]["input"] == 4 and clips.num_rows >= 1 and max(clips["duration"].to_pylist()) <= 30.0
    # where the time went inside a stage, not only per stage
    assert set(stages["separate"]["timings"]) == {"decode", "separate", "write"}
    assert stages["separate"]["timings"]["separate"] > 0
    assert set(stages["standardize"]["timings"]) == {"decode", "write"}
    filter_section = next(s for s in report["sections"] if s["stage"] == "filter")
    assert f"{clips.num_rows} clips" in filter_section["lines"][0]
    storage = Storage(job.root)
    run_id, records = Ledger(storage).latest_records("separate")
    assert run_id == first.run_id and len(records) == 4
    for record in records:
        mix, rate = read_flac(storage.read_bytes(record["audio"]))
        vocals, vocal_rate = read_flac(storage.read_bytes(record["vocals"]))
        assert vocal_rate == rate == 44100 and vocals.shape == mix.shape
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count("<svg") >= 5 and "Clips per song" in html and "Clip lengths" in html

    version = (tmp_path / "out" / "versions" / "LATEST").read_text()
    check_round_trip(storage, version, clips)
    assert check_no_clip_cuts_a_line(storage, clips, tmp_path / "out" / "synth") >= 8
    card = (tmp_path / "out" / "versions" / version / "datacard.md").read_text()
    assert card.count("> **Warning:**") >= 2 and "separate used model separator/" in card

    again = run_job(job, text)  # nothing is separated twice
    assert (tmp_path / "out" / "versions" / "LATEST").read_text() == version  # same job, same version id
    assert all(s["computed"] == 0 and s["reused"] == s["input"] for s in again.report["stages"])
    assert again.report["accounting_closed"] and again.report["sections"] == report["sections"]
    assert not [p for p in (tmp_path / "out" / "versions").iterdir() if p.name.startswith(".")]  # no staging

    assert cli_main(["eval-separation", str(tmp_path / "out")]) == 0
    result = json.loads((tmp_path / "out" / "eval" / "separation.json").read_text())
    assert result["songs"] == 4 and all(math.isfinite(s["accomp_sdr"]) for s in result["per_song"])
    assert result["median_vocals_sdr"] > result["median_vocals_baseline"] + 3  # real stems, not the mixture
    assert result["median_accomp_sdr"] > result["median_accomp_baseline"] + 3
    assert "median" in capsys.readouterr().out
    assert cli_main(["plan-clips", str(tmp_path / "out")]) == 0
    assert "filter: clips\n    4 songs in" in capsys.readouterr().out
    assert cli_main(["eval-alignment", str(tmp_path / "out")]) == 0
    alignment = json.loads((tmp_path / "out" / "eval" / "alignment.json").read_text())
    assert alignment["songs"] == 4 and alignment["median_abs_boundary_error"] < 0.4
