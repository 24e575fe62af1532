"""Start or join Ray: embedded local by default, a cluster by ``--address`` or ``RAY_ADDRESS``.

Joining a cluster is checked before ``ray.init`` is called, because ``ray.init`` waits a long time on
a bad address (over ten minutes on a port nothing listens on, measured with Ray 2.60) and reports a
token it was not given as a bare ``ConnectionError`` after ~20 s. The checks take seconds: a TCP
connection to the head's GCS port, then one GCS call, which a cluster with token authentication
refuses at once when this process has no token or the wrong one.

Token authentication (Ray 2.60): ``ray start --head`` turns it on when ``RAY_AUTH_MODE`` is unset
and a token exists (``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``,
which every embedded ``ray.init`` creates). A driver that joins by an explicit address never turns it
on by itself, so it needs ``RAY_AUTH_MODE=token`` and the same token; nodes and drivers started by
``ray start`` or ``ray job submit`` inherit both from the head's environment.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ray

from .errors import UserError

log = logging.getLogger(__name__)

#: Seconds allowed for each check of a cluster address (TCP connect, then one GCS call).
PROBE_TIMEOUT_S = 5.0
DEFAULT_GCS_PORT = 6379

TOKEN_HELP = (
    "give this process the token the head was started with: "
    "RAY_AUTH_TOKEN=<token> or RAY_AUTH_TOKEN_PATH=<file> (default file: ~/.ray/auth_token); "
    "`ray get-auth-token` on the head prints it"
)


#: What Ray raises for a missing or wrong token (None on a Ray without token authentication).
_AUTH_ERROR: type[BaseException] | None = getattr(ray.exceptions, "AuthenticationError", None)


class ClusterConnectionError(UserError):
    """The cluster address is malformed, unreachable or refuses this process; the message says what to do."""


@dataclass(frozen=True)
class Cluster:
    address: str | None
    cpus: float
    gpus: float
    nodes: int = 1
    #: the session folder of a Ray this process started (None when it joined a cluster or Ray was running)
    started_session: str | None = None

    def describe(self) -> str:
        where = self.address or "embedded local Ray"
        return f"{where}: {self.nodes} node(s), {self.cpus:g} CPUs, {self.gpus:g} GPUs"


def cluster_address(address: str | None) -> tuple[str | None, str]:
    """The cluster to join: ``address``, else ``RAY_ADDRESS``, else None (embedded); and where it came from."""
    source = "" if address else " (from RAY_ADDRESS)"
    return (address or os.environ.get("RAY_ADDRESS") or "").strip() or None, source


def check_address(address: str | None) -> None:
    """Fail within seconds when the cluster ``address`` (or ``RAY_ADDRESS``) names cannot be joined.

    Cheap, so commands call it before anything slow (a synthetic corpus, a model load) or any write.
    """
    resolved, source = cluster_address(address)
    if resolved and resolved != "auto":  # "auto": the cluster this machine's `ray start` wrote down; ray.init finds it
        check_cluster_address(resolved, source)


def start_ray(address: str | None = None, num_cpus: int | None = None, *, log_to_driver: bool = True) -> Cluster:
    """Connect to ``address`` (or ``RAY_ADDRESS``), else start a local Ray in this process.

    Raises :class:`ClusterConnectionError` within seconds when the address cannot be joined.
    Without an address the Ray is embedded even on a machine where ``ray start`` runs a cluster
    (``ray.init`` alone would join that one). Without ``log_to_driver`` the workers' own output
    (library chatter, tracebacks of failed items) stays in Ray's session logs instead of the
    console; the engine's progress is unaffected.
    """
    resolved, _ = cluster_address(address)
    started_session = None
    if not ray.is_initialized():
        if resolved:
            check_address(address)  # the given one: an address from RAY_ADDRESS is named as such
            ray.init(address=resolved, logging_level=logging.WARNING, log_to_driver=log_to_driver)
        else:
            ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=log_to_driver,
                configure_logging=True,
            )
            started_session = _session_dir()
    # The engine logs its own per-stage progress; Ray Data's block-level bars would drown it.
    ray.data.DataContext.get_current().enable_progress_bars = False
    resources = ray.cluster_resources()
    alive = sum(1 for node in ray.nodes() if node.get("Alive"))
    cluster = Cluster(resolved, float(resources.get("CPU", 0)), float(resources.get("GPU", 0)), alive,
                      started_session)
    log.info("ray: %s", cluster.describe())
    return cluster


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None, *,
                log_to_driver: bool = True) -> Iterator[Cluster]:
    """:func:`start_ray` for the block; a Ray it started is stopped at its end, workers included."""
    cluster = start_ray(address, num_cpus, log_to_driver=log_to_driver)
    try:
        yield cluster
    finally:
        if cluster.started_session:
            stop_ray(cluster)


def _session_dir() -> str | None:
    node = getattr(ray._private.worker, "_global_node", None)  # private; Ray 2.60 has no public accessor
    return node.get_session_dir_path() if node is not None else None


def stop_ray(cluster: Cluster | None = None) -> None:
    """Shut Ray down; for a Ray that ``cluster`` says this process started, end every worker it left behind.

    ``ray.shutdown`` stops the head's own processes; a worker that is busy in native code when its
    raylet goes may outlive it (one ``MapWorker`` was found alive 45 minutes after a run). The
    session folder names every worker process of that Ray (``python-core-worker-<id>_<pid>.log``);
    those still alive and still Ray workers are killed by pid, nothing else.
    """
    if ray.is_initialized():
        ray.shutdown()
    if cluster is not None and cluster.started_session:
        end_leftover_workers(Path(cluster.started_session))


def end_leftover_workers(session: Path, wait_s: float = 10.0) -> list[int]:
    """Kill the worker processes of the Ray session in ``session`` that are still alive; returns their pids."""
    pids = []
    for log_file in (session / "logs").glob("python-core-worker-*_*.log"):
        pid = int(log_file.stem.rsplit("_", 1)[1])
        if _is_ray_worker(pid):
            pids.append(pid)
    deadline = time.monotonic() + wait_s
    alive = list(pids)
    while alive and time.monotonic() < deadline:  # give them a moment to notice their raylet is gone
        time.sleep(0.2)
        alive = [pid for pid in alive if _is_ray_worker(pid)]
    for pid in alive:
        log.warning("ending Ray worker %d, left running after its Ray was shut down", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return alive


def _is_ray_worker(pid: int) -> bool:
    """True while ``pid`` is a live Ray worker process (its command line says so; a reused pid does not)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            command = cmdline.read()
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and (command.startswith(b"ray::") or b"default_worker.py" in command)


def parse_gcs_address(address: str, source: str = "") -> tuple[str, int]:
    """``HOST:PORT`` of a head's GCS, or a :class:`ClusterConnectionError` that names the right form."""
    submit = "`ray job submit --address http://HEAD:8265 -- songcorpus run JOB.toml --root ROOT`"
    if address.startswith(("http://", "https://")):
        raise ClusterConnectionError(
            f"Ray address {address!r}{source} is an HTTP address (the dashboard's job server); --address "
            f"takes the head's GCS address HOST:PORT as printed by `ray start --head` (port {DEFAULT_GCS_PORT} by "
            f"default). To hand the job to the job server instead, use {submit}"
        )
    if address.startswith("ray://"):
        # Besides the driver's own files: the Ray Client server of Ray 2.60 (grpcio 1.85) crashed in
        # gRPC's fork handling when it started the driver, tried on a loopback head.
        raise ClusterConnectionError(
            f"Ray address {address!r}{source} is a Ray Client address, which songcorpus does not use: the "
            "driver writes the ledger and the report itself, so it runs inside the cluster. From outside "
            f"the cluster use {submit}; on a cluster node use --address HEAD:{DEFAULT_GCS_PORT}"
        )
    host, sep, port_text = address.rpartition(":")
    host = host.strip("[]")  # [IPv6]:port
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ClusterConnectionError(
            f"Ray address {address!r}{source} is not HOST:PORT; give the head's GCS address as printed by "
            f"`ray start --head`, e.g. head-node:{DEFAULT_GCS_PORT}"
        )
    return host, int(port_text)


def check_cluster_address(address: str, source: str = "", timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Check within seconds that ``address`` is a Ray head's GCS that lets this process in."""
    host, port = parse_gcs_address(address, source)
    unset = "; or drop --address and unset RAY_ADDRESS to run on an embedded local Ray"
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        reason = f"no answer in {timeout_s:g} s" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise ClusterConnectionError(
            f"cannot reach a Ray head at {address!r}{source} ({reason}): "
            f"start it with `ray start --head --port {port}`, check the address `ray start --head` "
            f"printed, and that this machine can reach {host}:{port}{unset}"
        ) from None
    error = _gcs_call_error(address, timeout_s)
    if error is None:
        return
    if _AUTH_ERROR is not None and isinstance(error, _AUTH_ERROR):
        mode = os.environ.get("RAY_AUTH_MODE")
        if (mode or "").lower() != "token":
            raise ClusterConnectionError(
                f"the Ray cluster at {address!r} requires token authentication and this process has "
                f"RAY_AUTH_MODE={mode or '(unset)'}: set RAY_AUTH_MODE=token and {TOKEN_HELP}"
            ) from None
        raise ClusterConnectionError(
            f"the Ray cluster at {address!r} refused this process' token: {TOKEN_HELP}"
        ) from None
    raise ClusterConnectionError(
        f"{host}:{port} accepts connections but is not a Ray head's GCS port ({error}); --address takes "
        f"the port of `ray start --head --port` ({DEFAULT_GCS_PORT} by default), not the dashboard's "
        f"(8265) or Ray Client's (10001){unset}"
    ) from None


def _gcs_call_error(address: str, timeout_s: float) -> BaseException | None:
    """The error of one GCS call to ``address`` (None when it answered), waited for ``timeout_s``.

    ``GcsClient`` fetches the cluster id on construction: instant when the GCS answers or refuses
    the token, but ~40 s of retries when something else listens on the port, so it runs on a daemon
    thread (it releases the GIL) and a wait past ``timeout_s`` counts as "not a GCS".
    """
    try:
        from ray._raylet import GcsClient  # type: ignore[attr-defined]  # private (a Cython module without stubs); without it ray.init does the slow checking
    except ImportError:
        return None
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            GcsClient(address=address)
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001 - handed back to the caller as data
            outcome.append(exc)

    probe = threading.Thread(target=call, name="ray-address-probe", daemon=True)
    probe.start()
    probe.join(timeout_s)
    if not outcome:
        return TimeoutError(f"no GCS answer within {timeout_s:g} s")
    return outcome[0]
