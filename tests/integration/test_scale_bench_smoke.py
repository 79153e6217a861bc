"""Smoke test of ``benchmarks/scale.py``, small: every figure parses, every client was
joined, the reconnect storm converged on every node, and no process is left behind.

``--per-process 500`` makes the run split its clients as it does when ``RLIMIT_NOFILE``
is low (more nodes sharing the port, several load generators), so that path runs too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from testkit import UNIT
from testkit.processes import command_lines

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

ROOT = Path(__file__).resolve().parents[2]
PER_SIZE = ("connections", "memory_per_connection", "connect_rate", "broadcast_all_p50", "broadcast_all_p99")


def _children() -> list[str]:
    return command_lines("_scale_loadgen.py", "benchmarks.scale_app:app")


@pytest.mark.timeout(150)
def test_scale_bench_small_run() -> None:
    before = _children()
    command = [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--json", "--sizes", "400,900"]
    command += ["--storm", "600", "--broadcasts", "2", "--per-process", "500", "--time-limit", "120"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=140 * UNIT, check=False)
    assert proc.returncode == 0, proc.stderr
    figures: dict[str, dict[str, Any]] = {}
    for line in proc.stdout.splitlines():
        figure = json.loads(line)
        assert isinstance(figure["value"], float | int), figure
        figures[figure["bench"]] = figure
    for n in (400, 900):
        for name in PER_SIZE:
            assert f"scale.{name}[{n}]" in figures, (name, n, sorted(figures))
        assert figures[f"scale.connections[{n}]"]["value"] == n
        assert figures[f"scale.broadcast_all_p99[{n}]"]["detail"]["deliveries"] == 2 * n
    assert figures["scale.connections[900]"]["detail"]["load_generators"] == 2  # split as under a low limit
    storm = figures["scale.reconnect_storm[600]"]
    assert storm["detail"]["nodes"] == 3
    summaries = storm["detail"]["summaries"]
    assert len(summaries) == 3  # the restarted node included
    assert all(s["metas"] == 600 and s["users"] == 600 and s["full"] == 6 for s in summaries.values())
    assert _children() == before
