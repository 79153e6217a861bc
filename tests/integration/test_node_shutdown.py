"""SIGTERM stops a serving node's tree in reverse start order, each child within its
shutdown time, and the OS process exits 0. The node runs as a real OS process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import testkit.apps
from testkit import UNIT

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

SCRIPT = Path(testkit.apps.__file__).with_name("serve_script.py")


def test_sigterm_stops_the_tree_in_reverse_order_within_shutdown_times() -> None:
    env = {**os.environ, "ALIGHT_TEST_UNIT": str(UNIT)}
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        started: list[str] = []
        # Readiness: the last child's init line (the node handles SIGTERM by then).
        while not started or started[-1] != "started c":
            line = proc.stdout.readline()
            assert line, f"the node exited before it was ready (status {proc.wait()})"
            started.append(line.strip())
        assert started == ["started a", "started b1", "started b2", "started slow", "started stubborn", "started c"]
        begun = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20 * UNIT)
        elapsed = time.monotonic() - begun
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.splitlines() == [
        "terminate c shutdown",
        "stubborn ignores shutdown",
        "terminate slow shutdown",
        "terminate b2 shutdown",
        "terminate b1 shutdown",
        "terminate a shutdown",
        "node stopped",
    ], err
    # The two children that do not stop are killed after their 0.2-unit shutdown times.
    assert elapsed >= 0.4 * UNIT
