"""The demo job shrunk to four songs, run once per test session on the embedded Ray; tests that need a
finished demo root or its dataset version id share it (each run of the demo costs about a minute)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from songcorpus.pipeline.jobfile import parse_job
from songcorpus.pipeline.runner import RunResult, run_job
from songcorpus.schemas.job import JobSpec

REPO = Path(__file__).parents[2]
DEMO = REPO / "jobs" / "demo.toml"
DEMO4 = DEMO.read_text().replace("songs = 12", "songs = 4")


@dataclass(frozen=True)
class DemoRun:
    job: JobSpec
    text: str
    root: Path
    result: RunResult

    @property
    def version(self) -> str:
        return (self.root / "versions" / "LATEST").read_text()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, ray_cluster: object) -> DemoRun:
    """The four-song demo, run with default resources: its first (computing) run."""
    root = tmp_path_factory.mktemp("demo4") / "out"
    job = parse_job(DEMO4, root=str(root), base=REPO)  # the committed models, by the job's own paths
    return DemoRun(job, DEMO4, root, run_job(job, DEMO4))
