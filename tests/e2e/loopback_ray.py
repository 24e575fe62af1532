"""A real multi-node Ray on this machine: one ``ray start --head`` and ``ray start --address`` per node.

Each node is a ``ray start --block`` child in its own process group, with its own ports, so that it
shares nothing with other Rays on the machine and can be stopped (or killed, to lose a node) by its
own process group id. The commands are the README's "On a cluster" ones plus what several nodes on
one machine need (distinct ports, a private temp dir, declared resources).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
RAY = str(VENV_BIN / "ray")
START_TIMEOUT_S = 240.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def free_port_range(size: int) -> int:
    """The first port of ``size`` consecutive free ports (checked one by one)."""
    for _ in range(50):
        first = free_port()
        if first + size >= 65535:
            continue
        try:
            for port in range(first, first + size):
                with socket.socket() as s:
                    s.bind(("", port))
            return first
        except OSError:
            continue
    raise RuntimeError(f"no {size} consecutive free ports found")


def cluster_env(token: str) -> dict[str, str]:
    """The environment of every node and submitter: the project's venv first on PATH (as after
    ``source .venv/bin/activate``) and token authentication with this cluster's own token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(VENV_BIN.parent),
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=token,
        RAY_USAGE_STATS_ENABLED="0",
        RAY_DEDUP_LOGS="0",
    )
    return env


@dataclass
class RayNode:
    name: str
    proc: subprocess.Popen
    log: Path
    resources: dict[str, float]

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> None:
        """SIGTERM: ``ray start --block`` stops its node cleanly; SIGKILL: the node is lost at once."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)  # the group of the `ray start` we started (start_new_session)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def kill(self) -> None:
        """Lose the node: SIGKILL to its raylet, object store and workers (one process group)."""
        self.stop(signal.SIGKILL)


@dataclass
class LoopbackCluster:
    base: Path
    token: str = field(default_factory=lambda: secrets.token_hex(32))
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    nodes: list[RayNode] = field(default_factory=list)
    #: node name -> Ray node id, filled by wait_for_nodes
    node_ids: dict[str, str] = field(default_factory=dict)
    #: Ray's sockets live under its temp dir, and a unix socket path must stay under 108 bytes.
    temp_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sc-ray-", dir="/tmp")))

    @property
    def env(self) -> dict[str, str]:
        return cluster_env(self.token)

    @property
    def address(self) -> str:
        """What ``--address`` and ``ray start --address`` take: the head's GCS, HOST:PORT."""
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def job_server(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _node_flags(self, name: str, num_cpus: int, num_gpus: int) -> list[str]:
        workers = free_port_range(40)
        return [
            "--block", "--disable-usage-stats",
            "--num-cpus", str(num_cpus), "--num-gpus", str(num_gpus),
            "--resources", json.dumps({f"node_{name}": 1}),
            "--object-store-memory", str(300 * 1024**2),
            "--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
            "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
            "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port()),
            "--min-worker-port", str(workers), "--max-worker-port", str(workers + 39),
        ]

    def _start(self, name: str, command: list[str], num_cpus: int, num_gpus: int) -> RayNode:
        log = self.base / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=self.base)
        node = RayNode(name, proc, log, {"CPU": num_cpus, "GPU": num_gpus})
        self.nodes.append(node)
        return node

    def start_head(self, num_cpus: int = 0) -> RayNode:
        # README: ray start --head --port 6379 --dashboard-host 0.0.0.0
        command = [RAY, "start", "--head", "--port", str(self.gcs_port), "--dashboard-host", "0.0.0.0",
                   "--dashboard-port", str(self.dashboard_port), "--ray-client-server-port", str(free_port()),
                   "--temp-dir", str(self.temp_dir), *self._node_flags("head", num_cpus, 0)]
        return self._wait_started(self._start("head", command, num_cpus, 0))

    def add_worker(self, name: str, num_cpus: int, num_gpus: int = 0) -> RayNode:
        # README: ray start --address HEAD:6379
        command = [RAY, "start", "--address", self.address, *self._node_flags(name, num_cpus, num_gpus)]
        # one at a time: on a loaded machine, nodes started together time out registering
        return self._wait_started(self._start(name, command, num_cpus, num_gpus))

    def _wait_started(self, node: RayNode, timeout_s: float = START_TIMEOUT_S) -> RayNode:
        deadline = time.monotonic() + timeout_s
        while "Ray runtime started." not in node.log.read_text(errors="replace"):
            if node.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray node {node.name} did not start:\n{node.log.read_text()[-3000:]}")
            time.sleep(0.5)
        return node

    def node(self, name: str) -> RayNode:
        return next(node for node in self.nodes if node.name == name)

    def ray_cli(self, *args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess:
        return subprocess.run([RAY, *args], check=False, env=self.env, capture_output=True, text=True,
                              timeout=timeout_s, cwd=self.base)

    def alive_nodes(self) -> list[dict]:
        """``ray list nodes`` of the alive nodes, each with its ``node_id`` and ``resources_total``."""
        done = self.ray_cli("list", "nodes", "--address", self.address, "--format", "json",
                            "--filter", "state=ALIVE", "--detail")
        return _json_list(done)

    def wait_for_nodes(self, timeout_s: float = START_TIMEOUT_S) -> dict[str, str]:
        """Wait until every started node is alive; returns node name -> Ray node id."""
        deadline = time.monotonic() + timeout_s
        while True:
            for node in self.nodes:
                if node.proc.poll() is not None:
                    raise RuntimeError(f"ray node {node.name} exited:\n{node.log.read_text()[-3000:]}")
            ids = {}
            for info in self.alive_nodes():
                for node in self.nodes:
                    if f"node_{node.name}" in (info.get("resources_total") or {}):
                        ids[node.name] = info["node_id"]
            if len(ids) == len(self.nodes):
                self.node_ids = ids
                return ids
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {sorted(ids)} of {[n.name for n in self.nodes]} came up in {timeout_s:g} s")
            time.sleep(3)

    def alive_actors(self) -> list[dict]:
        done = self.ray_cli("list", "actors", "--address", self.address, "--format", "json",
                            "--filter", "state=ALIVE", "--limit", "1000")
        return _json_list(done)

    def shutdown(self) -> None:
        for node in reversed(self.nodes):  # workers first, the head last
            node.stop()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _json_list(done: subprocess.CompletedProcess) -> list[dict]:
    """The JSON list a ``ray list ... --format json`` printed, or [] while the dashboard is starting."""
    try:
        return json.loads(done.stdout) if done.returncode == 0 else []
    except json.JSONDecodeError:
        return []
