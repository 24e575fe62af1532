"""The demo job on a real three-node Ray on this machine, run with the README's cluster commands.

A head (no CPUs: it runs the job server and the drivers), a CPU worker and a worker declaring one
GPU. The job, shrunk to four songs, asks one GPU for `separate` (torch falls back to CPU there).
It is handed to the head's job server with `ray job submit`: it finishes with exactly one ledger
row per item per stage, and `separate` ran only on the GPU node. A job asking for more GPUs is
refused by `songcorpus run --address`; wrong addresses and tokens fail in seconds.

It publishes the version id the suite's embedded demo run published. Long (`-m long`): a second
submission survives the CPU worker being killed mid-run, with the same version id again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from songcorpus.pipeline.ledger import Ledger
from songcorpus.pipeline.storage import Storage
from tests.e2e.loopback_ray import LoopbackCluster

pytestmark = pytest.mark.timeout(1500)

REPO = Path(__file__).parents[2]
DEMO = REPO / "jobs" / "demo.toml"
SONGS = 4
STAGES = ("ingest", "standardize", "separate", "align", "segment", "filter", "shard")
#: Stages that stream together in one phase: the CPU worker is killed while they run.
STREAMED = ("standardize", "separate", "align", "segment", "filter")
SONGCORPUS = str(Path(sys.executable).parent / "songcorpus")


def cluster_job(songs: int = SONGS, separate_gpus: int = 1) -> str:
    """jobs/demo.toml shrunk as test_demo_job.py does it, its relative model paths as they are (under `ray
    job submit` the driver runs in a copy of jobs/, and they resolve against the project), with resources a
    node loss can be survived with: after the CPU worker is gone, the other nodes still hold every streamed
    stage's worker (0.5 CPU each; the plan is fitted at the start)."""
    text = DEMO.read_text().replace("songs = 12", f"songs = {songs}")
    for stage in STREAMED:
        # one item per batch, so that the kill lands between items of a stage
        text += f"\n[stages.{stage}.resources]\nnum_cpus = 0.5\nmax_workers = 1\nbatch_size = 1\n"
        if stage == "separate":
            text += f"num_gpus = {separate_gpus}\n"
    return text


def run_rows(root: Path, stage: str, run_id: str) -> pa.Table:
    table = Ledger(Storage(str(root))).read(stage)
    return table.filter(pc.equal(table["run_id"], run_id))


def logged(root: Path, stage: str) -> int:
    """Rows a stage has logged so far in ``root`` (one run only there); 0 before the ledger exists."""
    try:
        return Ledger(Storage(str(root))).read(stage).num_rows
    except (FileNotFoundError, OSError, pa.ArrowInvalid):
        return 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    loopback = LoopbackCluster(tmp_path_factory.mktemp("cluster"))
    try:
        loopback.start_head(num_cpus=0)
        loopback.add_worker("cpu", num_cpus=2)
        loopback.add_worker("gpu", num_cpus=3, num_gpus=1)
        loopback.wait_for_nodes()
        yield loopback
    finally:
        loopback.shutdown()


@dataclass
class Submitted:
    root: Path
    job_file: Path
    output: str
    returncode: int
    run_id: str
    report: dict
    seconds: float
    #: rows each stage had logged when the CPU worker was killed (empty: no node was killed)
    at_kill: dict[str, int]
    version: str


def submit(cluster: LoopbackCluster, root: Path, lose_cpu_node: bool = False) -> Submitted:
    """``ray job submit`` as the README writes it; with ``lose_cpu_node``, the CPU worker is killed
    while the streamed stages run and one of their workers is on it."""
    work = cluster.base / "work"
    job_file = work / "jobs" / "demo4.toml"
    if not job_file.exists():
        job_file.parent.mkdir(parents=True)
        job_file.write_text(cluster_job())
    started = time.monotonic()
    proc = subprocess.Popen(
        ["ray", "job", "submit", "--address", cluster.job_server, "--working-dir", "jobs", "--",
         "songcorpus", "run", "demo4.toml", "--root", str(root)],
        cwd=work, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    at_kill: dict[str, int] = {}
    try:
        while lose_cpu_node and proc.poll() is None and not at_kill:
            time.sleep(1)
            if logged(root, "standardize") == 0 or logged(root, "filter") > 0:
                continue  # the streamed stages have not started, or are done
            if any(a.get("node_id") == cluster.node_ids["cpu"] and "StageWorker" in (a.get("class_name") or "")
                   for a in cluster.alive_actors()):
                at_kill = {stage: logged(root, stage) for stage in STAGES}
                cluster.node("cpu").kill()
        output, _ = proc.communicate(timeout=1200)
    finally:
        if proc.poll() is None:  # a timeout: the job itself ends with the cluster
            proc.kill()
            proc.wait()
    (root.parent / f"{root.name}.submit.log").write_text(output)
    reports = sorted(root.glob("runs/*/report.json"))
    assert len(reports) == 1, output[-5000:]
    report = json.loads(reports[0].read_text())
    latest = root / "versions" / "LATEST"
    version = latest.read_text().strip() if latest.exists() else ""
    return Submitted(root, job_file, output, proc.returncode, report["run_id"], report,
                     time.monotonic() - started, at_kill, version)


def assert_finished_with_every_item_once(run: Submitted) -> None:
    assert run.returncode == 0, run.output[-5000:]
    assert "succeeded" in run.output
    report = run.report
    assert report["status"] == "completed" and report["accounting_closed"]
    stages = {s["name"]: s for s in report["stages"]}
    assert list(stages) == list(STAGES)
    # Accounting that does not trust the report (its input is its ledger row count): each stage
    # logged exactly one row per item it was handed, and was handed exactly what the stage before
    # passed, so nothing was lost or done twice.
    handed = SONGS
    for stage in STAGES:
        rows = run_rows(run.root, stage, run.run_id)
        items = rows["item_id"].to_pylist()
        assert len(items) == len(set(items)) == handed, (stage, sorted(items))
        ok = int(pc.sum(pc.equal(rows["status"], "ok")).as_py() or 0)
        assert (stages[stage]["input"], stages[stage]["ok"]) == (handed, ok), stage
        handed = ok
    assert stages["shard"]["ok"] >= 1
    assert run.version and (run.root / "versions" / run.version / "manifest.json").is_file()


@pytest.fixture(scope="module")
def submitted(cluster: LoopbackCluster) -> Submitted:
    run = submit(cluster, cluster.base / "out")
    print(f"\nray job submit of the 4-song demo: {run.seconds:.0f} s")
    return run


def test_submitted_job_finishes_with_every_item_once(submitted: Submitted):
    assert_finished_with_every_item_once(submitted)


def test_the_submitted_job_publishes_the_embedded_demos_version(submitted: Submitted, demo_run):
    """Three nodes, other resources (one GPU-node worker for separate, half a CPU per streamed stage, one item
    per batch) and relative model paths in a shipped copy of jobs/: the same dataset version id."""
    assert submitted.version == demo_run.version


def test_separate_ran_only_on_the_gpu_node(submitted: Submitted, cluster: LoopbackCluster):
    assert set(cluster.node_ids) == {"head", "cpu", "gpu"} and len(set(cluster.node_ids.values())) == 3
    workers = {stage: run_rows(submitted.root, stage, submitted.run_id)["worker"].to_pylist() for stage in STAGES}
    # the ledger names each worker host:node:pid, and the node is one of this cluster's
    known = {node_id[:12] for node_id in cluster.node_ids.values()}
    assert all(w.split(":")[1] in known for rows in workers.values() for w in rows), workers
    assert len(workers["separate"]) == SONGS
    assert {w.split(":")[1] for w in workers["separate"]} == {cluster.node_ids["gpu"][:12]}, workers["separate"]


@pytest.fixture(scope="module")
def refused(cluster: LoopbackCluster) -> tuple[subprocess.CompletedProcess, Path, float]:
    """``songcorpus run --address`` of a job asking 2 GPUs per separate worker of a 1-GPU cluster."""
    job = cluster.base / "greedy.toml"
    job.write_text(cluster_job(songs=1, separate_gpus=2))
    root = cluster.base / "greedy"
    started = time.monotonic()
    done = subprocess.run([SONGCORPUS, "run", str(job), "--root", str(root), "--address", cluster.address],
                          env=cluster.env, capture_output=True, text=True, timeout=600, check=False)
    return done, root, time.monotonic() - started


def test_a_job_asking_more_gpus_than_the_cluster_has_is_refused(refused):
    done, root, seconds = refused
    print(f"refused in {seconds:.0f} s")
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-3000:]
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and "stages need 2 GPUs" in error and "cluster has 1" in error, error
    assert "stages.separate.resources.num_gpus" in error  # the key to change
    assert logged(root, "separate") == 0 and not (root / "artifacts" / "separate").exists()


def test_a_refused_job_did_no_work_at_all(refused):
    done, root, _ = refused
    assert done.returncode == 2
    assert all(logged(root, stage) == 0 for stage in STAGES)


PROBE = """
import sys, time
from songcorpus.pipeline.runtime import ClusterConnectionError, check_cluster_address
started = time.monotonic()
try:
    check_cluster_address(sys.argv[1])
    print("connected")
except ClusterConnectionError as exc:
    print(f"{time.monotonic() - started:.2f}s {exc}")
"""


def probe(address: str, env: dict[str, str]) -> tuple[float, str]:
    """Seconds the address check took in a fresh process (Ray reads its auth settings once), and its message."""
    done = subprocess.run([sys.executable, "-c", PROBE, address], env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    line = done.stdout.strip().splitlines()[-1]
    if line == "connected":
        return 0.0, line
    seconds, message = line.split(" ", 1)
    return float(seconds[:-1]), message


def test_wrong_address_or_token_fails_in_seconds_with_what_to_do(cluster: LoopbackCluster):
    no_auth = {k: v for k, v in cluster.env.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    assert probe(cluster.address, cluster.env) == (0.0, "connected")
    seconds, message = probe(cluster.address, no_auth)  # what a new user hit: token auth is on
    assert seconds < 10 and "requires token authentication" in message and "RAY_AUTH_MODE=token" in message
    seconds, message = probe(cluster.address, {**cluster.env, "RAY_AUTH_TOKEN": "0" * 64})
    assert seconds < 10 and "refused this process' token" in message and "RAY_AUTH_TOKEN" in message
    seconds, message = probe(cluster.job_server, cluster.env)
    assert seconds < 1 and "HTTP address" in message and "ray job submit --address" in message
    seconds, message = probe(f"127.0.0.1:{cluster.dashboard_port}", cluster.env)  # a port that is no GCS
    assert seconds < 10 and "not a Ray head's GCS port" in message
    seconds, message = probe("127.0.0.1:1", cluster.env)
    assert seconds < 10 and "cannot reach a Ray head" in message and "ray start --head" in message

    # the same through the CLI, as the user types it
    job = cluster.base / "tiny.toml"
    job.write_text(cluster_job(songs=1))
    started = time.monotonic()
    done = subprocess.run([SONGCORPUS, "run", str(job), "--root", str(cluster.base / "tiny"),
                           "--address", cluster.address], env=no_auth, capture_output=True, text=True,
                          timeout=300, check=False)
    print(f"songcorpus run --address without a token: exit {done.returncode} in {time.monotonic() - started:.0f} s")
    assert done.returncode == 2 and "RAY_AUTH_MODE=token" in done.stderr, done.stderr[-3000:]


@pytest.mark.long
def test_a_submitted_job_survives_losing_a_worker_node(submitted: Submitted, cluster: LoopbackCluster):
    """The same job into a new root; the CPU worker is killed while the streamed stages run on it.

    Slow: ~5 min on 2 busy cores, of which ~1 min is Ray noticing the lost node and restarting the
    stage workers it held elsewhere. Runs after the other cluster tests, which need that node."""
    run = submit(cluster, cluster.base / "out-lost-node", lose_cpu_node=True)
    print(f"\nray job submit, losing a node: {run.seconds:.0f} s")
    assert run.at_kill, "no stage worker was ever on the CPU worker while the streamed stages ran"
    assert run.at_kill["standardize"] >= 1 and run.at_kill["filter"] == 0  # lost mid-phase
    assert cluster.node_ids["cpu"] not in {n["node_id"] for n in cluster.alive_nodes()}
    assert_finished_with_every_item_once(run)
    assert run.version == submitted.version  # losing a node changes nothing in the data
