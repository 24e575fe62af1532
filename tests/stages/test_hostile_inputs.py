"""Every hostile input ends ok or rejected with its own reason; nothing crashes; counts close."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from songcorpus.pipeline.jobfile import parse_job
from songcorpus.pipeline.ledger import Ledger
from songcorpus.pipeline.runner import run_job
from songcorpus.pipeline.storage import Storage
from tests.songtools import job_toml, write_manifest
from tests.stages.hostile_inputs import write_hostile_set


@pytest.mark.timeout(600)
def test_hostile_inputs_each_get_their_reason(tmp_path, ray_cluster):
    rows, expected = write_hostile_set(tmp_path / "in")
    manifest = write_manifest(tmp_path / "in" / "manifest.csv", rows)
    text = job_toml("hostile", tmp_path / "out", manifest)
    result = run_job(parse_job(text), text)
    assert result.status == "completed"

    ledger = Ledger(Storage(str(tmp_path / "out")))
    got: dict[str, tuple[str, str]] = {}
    for stage in ("ingest", "standardize"):
        table = ledger.read(stage)
        for r in table.filter(pc.equal(table["run_id"], result.run_id)).to_pylist():
            song = r["item_id"]
            if r["status"] != "ok" or stage == "standardize":
                got[song] = (stage, r["reason"] or "ok")
    assert got == expected

    by_stage = {s["name"]: s for s in result.report["stages"]}
    assert by_stage["ingest"]["input"] == len(rows)
    assert by_stage["standardize"]["input"] == by_stage["ingest"]["ok"]
    assert all(s["input"] == s["ok"] + s["rejected"] for s in by_stage.values())
    assert result.report["accounting_closed"]
