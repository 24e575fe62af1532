"""Joining a cluster fails in seconds, with what to do, when the address is wrong (no Ray needed).

The token cases need a real head: tests/e2e/test_cluster.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from songcorpus.pipeline.runtime import (
    ClusterConnectionError,
    check_cluster_address,
    parse_gcs_address,
)


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("http://head:8265", "ray job submit --address http://HEAD:8265"),
        ("https://head:8265", "HTTP address"),
        ("ray://head:10001", "Ray Client address"),
        ("head", "is not HOST:PORT"),
        ("head:port", "is not HOST:PORT"),
        (":6379", "is not HOST:PORT"),
        ("head:70000", "is not HOST:PORT"),
    ],
)
def test_addresses_that_are_not_a_gcs_are_refused_with_the_right_form(address: str, says: str):
    with pytest.raises(ClusterConnectionError, match="Ray address") as caught:
        parse_gcs_address(address)
    assert says in str(caught.value)


def test_gcs_addresses_parse():
    assert parse_gcs_address("head-node:6379") == ("head-node", 6379)
    assert parse_gcs_address("[::1]:6380") == ("::1", 6380)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_nothing_listening_fails_at_once_and_says_how_to_start_a_head():
    port = closed_port()
    started = time.monotonic()
    with pytest.raises(ClusterConnectionError, match="cannot reach a Ray head") as caught:
        check_cluster_address(f"127.0.0.1:{port}")
    assert time.monotonic() - started < 2
    assert f"ray start --head --port {port}" in str(caught.value) and "unset RAY_ADDRESS" in str(caught.value)


def test_an_unknown_host_fails_at_once():
    with pytest.raises(ClusterConnectionError, match=r"cannot reach a Ray head at 'no-such-head\.invalid:6379'"):
        check_cluster_address("no-such-head.invalid:6379", timeout_s=2)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers, as a dashboard or a stray service would."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_a_port_that_is_no_gcs_fails_within_the_probe_timeout(silent_port: int):
    started = time.monotonic()
    with pytest.raises(ClusterConnectionError, match="not a Ray head's GCS port") as caught:
        check_cluster_address(f"127.0.0.1:{silent_port}", timeout_s=2)
    assert time.monotonic() - started < 6
    assert "6379 by default" in str(caught.value)


def test_ray_address_from_the_environment_is_checked_and_named():
    """In a fresh process: start_ray only checks an address when no Ray is running in the process."""
    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{closed_port()}"}
    code = "from songcorpus.pipeline.runtime import start_ray; start_ray()"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 1
    assert "ClusterConnectionError: cannot reach a Ray head at" in done.stderr
    assert "(from RAY_ADDRESS)" in done.stderr
