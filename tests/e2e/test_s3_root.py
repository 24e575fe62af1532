"""A whole small job with its output root on S3: a local S3-compatible server (moto) the test starts."""

from __future__ import annotations

import json
import socket

import boto3
import pytest
from moto.server import ThreadedMotoServer

from songcorpus.pipeline.jobfile import parse_job
from songcorpus.pipeline.runner import run_job
from songcorpus.pipeline.status import status_text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_root():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="corpus")
    # credentials and endpoint travel in the URI, so every Ray worker reaches the same server
    query = f"endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    yield f"s3://testing:testing@corpus/jobs/demo?{query}", client
    server.stop()


@pytest.mark.timeout(600)
def test_job_runs_and_resumes_with_an_s3_root(tone_songs, s3_root, ray_cluster):
    root, client = s3_root
    text = (f'name = "s3demo"\nroot = "{root}"\n[input]\nmanifest = "{tone_songs}"\n[runtime]\nstall_timeout_s = 120\n'
            "[stages.ingest]\n[stages.standardize]\nmin_seconds = 1.0\n")
    first = run_job(parse_job(text), text)
    assert first.status == "completed" and first.report["accounting_closed"]
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="corpus", Prefix="jobs/demo/")["Contents"]}
    flacs = [k for k in keys if k.startswith("jobs/demo/artifacts/standardize/") and k.endswith("audio.flac")]
    assert len(flacs) == 6 and "jobs/demo/report.html" in keys
    assert not [k for k in keys if "/.tmp-" in k]  # atomic writes left no temp objects behind
    report = json.loads(client.get_object(Bucket="corpus", Key="jobs/demo/report.json")["Body"].read())
    assert {s["name"]: s["ok"] for s in report["stages"]} == {"ingest": 6, "standardize": 6}

    again = run_job(parse_job(text), text)
    assert all(s["computed"] == 0 for s in again.report["stages"])
    assert "accounting closed" in status_text(root)
