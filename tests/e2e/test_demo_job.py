"""The shipped demo job, shrunk to four songs: synth -> ingest -> standardize -> separate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from songcorpus.pipeline.jobfile import parse_job
from songcorpus.pipeline.runner import run_job
from songcorpus.pipeline.storage import Storage
from songcorpus.stages.audio_io import read_flac

from songcorpus.cli import main as cli_main

DEMO = Path(__file__).parents[2] / "jobs" / "demo.toml"


@pytest.mark.timeout(900)
def test_demo_job_runs_resumes_and_evaluates(tmp_path, ray_cluster, capsys):
    text = DEMO.read_text().replace("songs = 12", "songs = 4").replace('"out/models/demucs"', '"models/demucs"')
    job = parse_job(text, root=str(tmp_path / "out"), base=tmp_path)
    first = run_job(job, text)
    report = first.report
    assert first.status == "completed" and report["accounting_closed"]
    assert "smoke-test model" in report["notices"][0]  # the first line says the stems are not real
    stages = {s["name"]: s for s in report["stages"]}
    assert [stages[n]["ok"] for n in ("ingest", "standardize", "separate")] == [4, 4, 4]
    storage = Storage(job.root)
    for record_file in (tmp_path / "out" / "artifacts" / "separate").glob("*/record.json"):
        record = json.loads(record_file.read_text())
        mix, rate = read_flac(storage.read_bytes(record["audio"]))
        vocals, vocal_rate = read_flac(storage.read_bytes(record["vocals"]))
        assert vocal_rate == rate == 44100 and vocals.shape == mix.shape
    assert (tmp_path / "out" / "report.html").read_text().count("<svg") >= 3

    again = run_job(job, text)  # nothing is separated twice
    assert {s["name"]: (s["reused"], s["computed"]) for s in again.report["stages"]} == {
        "ingest": (4, 0), "standardize": (4, 0), "separate": (4, 0)}

    assert cli_main(["eval-separation", str(tmp_path / "out")]) == 0
    result = json.loads((tmp_path / "out" / "eval" / "separation.json").read_text())
    assert result["songs"] == 4 and all(math.isfinite(s["accomp_sdr"]) for s in result["per_song"])
    assert "mean" in capsys.readouterr().out
