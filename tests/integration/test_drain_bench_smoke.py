"""Smoke test of ``benchmarks/drain.py --quick``: a rolling restart of three nodes under
1,000 clients; every node drained and came back, nothing was lost outside the drain
windows, and no process is left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from testkit import UNIT
from testkit.processes import command_lines

pytestmark = pytest.mark.slow  # OS processes: not in the fast lane

ROOT = Path(__file__).resolve().parents[2]


def _children() -> list[str]:
    return command_lines("_scale_loadgen.py", "benchmarks.scale_app:app")


@pytest.mark.timeout(150)
def test_drain_bench_quick_run() -> None:
    before = _children()
    command = [sys.executable, str(ROOT / "benchmarks" / "drain.py"), "--json", "--quick", "--drain", "300,0.2"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=140 * UNIT, check=False)
    assert proc.returncode == 0, proc.stderr
    figures: dict[str, dict[str, Any]] = {}
    for line in proc.stdout.splitlines():
        figure = json.loads(line)
        figures[figure["bench"]] = figure
    steps = [f for name, f in figures.items() if name.startswith("drain.rolling_restart_settle[")]
    assert len(steps) == 3
    for step in steps:
        detail = step["detail"]
        assert detail["exit_status"] == 0  # an orderly stop
        assert 0 < detail["rejoined_s"] <= detail["settle_s"]
        assert detail["all_exact_s"] >= detail["back_s"]
        assert detail["drainer"] == "300,0.2"
    lost = figures["drain.broadcasts_lost_outside_drain"]
    assert lost["baseline_value"] > 0  # deliveries were expected
    assert lost["value"] == 0, lost["detail"]
    assert lost["detail"]["duplicates"] == 0
    assert figures["drain.peak_join_rate"]["value"] > 0
    assert _children() == before
