"""Nodes of two clusters that meet. A node started with another cluster secret than its
seed's: the seed logs the refused handshake (bounded, and nothing of the stranger's is
read), the joiner says to check ALIGHT_CLUSTER_SECRET and never announces itself ready,
and still stops on SIGTERM. A node that would share a port (--reuse-port) with another
cluster's nodes refuses to start (exit 3, one line); one of the same cluster shares it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from testkit import UNIT
from testkit.processes import REPO, free_port

pytestmark = pytest.mark.slow  # OS processes

APP = "alight.examples.reference:app"


def _node(name: str, secret: str, log: Path, *options: str) -> subprocess.Popen[bytes]:
    """``alight node`` of the reference app, its output into ``log``."""
    with log.open("wb") as out:  # the child holds its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "alight.cli", "node", "--app", APP, "--name", name, *options],
            cwd=REPO,
            env={**os.environ, "ALIGHT_CLUSTER_SECRET": secret},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_for(path: Path, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded
        content = path.read_text(errors="replace")
        if text in content:
            return content
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path.name}: {path.read_text(errors='replace')[-2000:]}")


def test_another_secret_is_named_and_the_joiner_is_not_ready(tmp_path: Path) -> None:
    port = free_port()
    seed_log, joiner_log = tmp_path / "seed.log", tmp_path / "joiner.log"
    seed = _node("seed", "a" * 32, seed_log, "--port", "0", "--cluster-port", str(port))
    joiner = None
    try:
        _wait_for(seed_log, "alight-node-ready", 15 * UNIT)
        joiner = _node("joiner", "b" * 32, joiner_log, "--port", "0", "--seeds", f"127.0.0.1:{port}")
        said = _wait_for(joiner_log, "check that ALIGHT_CLUSTER_SECRET is the same on every node", 15 * UNIT)
        assert "its handshake failed" in said
        assert "alight-node-ready" not in said
        assert "ready" not in said.replace("already", "")
        _wait_for(seed_log, "refused a handshake", 5 * UNIT)
        joiner.send_signal(signal.SIGTERM)
        assert joiner.wait(timeout=15 * UNIT) == 0
        assert "alight-node-ready" not in joiner_log.read_text()
    finally:
        for proc in (joiner, seed):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15 * UNIT)
    # Bounded: the seed logs the 1st, 10th, 100th ... refusal, not every retry.
    refusals = [line for line in seed_log.read_text().splitlines() if "refused a handshake" in line]
    assert 1 <= len(refusals) <= 3, refusals


def test_a_port_held_by_another_cluster_is_refused(tmp_path: Path) -> None:
    http_port = free_port()
    share = ("--port", str(http_port), "--reuse-port")
    first_log, stranger_log, sibling_log = tmp_path / "first.log", tmp_path / "stranger.log", tmp_path / "sibling.log"
    procs = []
    try:
        procs.append(_node("first", "a" * 32, first_log, *share))
        _wait_for(first_log, "alight-node-ready", 15 * UNIT)
        stranger = _node("stranger", "b" * 32, stranger_log, *share)
        procs.append(stranger)
        assert stranger.wait(timeout=15 * UNIT) == 3
        said = stranger_log.read_text()
        assert f"127.0.0.1:{http_port} is already served by another cluster's nodes" in said, said
        assert "Traceback" not in said
        # A node of the same cluster shares the port, as --reuse-port is for.
        seed = _cluster_address(first_log)
        procs.append(_node("sibling", "a" * 32, sibling_log, *share, "--seeds", seed))
        _wait_for(sibling_log, "alight-node-ready", 15 * UNIT)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15 * UNIT)


def _cluster_address(log: Path) -> str:
    for line in log.read_text().splitlines():
        if line.startswith("alight-node-ready"):
            return line.split("cluster_address=")[1].split()[0].removeprefix("tcp://")
    raise AssertionError(log.read_text())
