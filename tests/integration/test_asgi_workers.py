"""Several ASGI workers without a cluster or a broker: each worker is a node of its own, so a
broadcast reaches only the clients of the worker it was made in. Said at start, with the fix."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from testkit import UNIT
from testkit.processes import REPO, free_port, kill_group

pytestmark = pytest.mark.slow  # OS processes

WARNING = "no cluster and no broker"


def _uvicorn(workers: int, log: Path) -> str:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "examples.reference:asgi_app", "--port", str(port)]
    command += ["--workers", str(workers)] if workers > 1 else []
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 20 * UNIT
        while time.monotonic() < deadline:  # bounded: until every worker's startup is complete
            text = log.read_text(errors="replace")
            if text.count("Application startup complete") >= workers:
                return text
            assert proc.poll() is None, text
            time.sleep(0.05)
        raise AssertionError(log.read_text(errors="replace"))
    finally:
        kill_group(proc)


def test_two_workers_without_a_cluster_are_warned_about(tmp_path: Path) -> None:
    text = _uvicorn(2, tmp_path / "two.log")
    warnings = [line for line in text.splitlines() if WARNING in line]
    assert len(warnings) == 2, text  # one per worker
    assert "alight node" in warnings[0]
    assert "RedisPubSub" in warnings[0]


def test_one_process_is_not_warned_about(tmp_path: Path) -> None:
    assert WARNING not in _uvicorn(1, tmp_path / "one.log")
