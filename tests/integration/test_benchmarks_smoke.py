"""Smoke test of ``benchmarks/actors.py``: ``--json --quick`` runs and prints every figure.

It checks the shape of the report, not the speed: the figures themselves are for
people to read (and for the targets in the issue), not for a test to assert.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "actors.py"
KEYS = {"bench", "value", "unit", "baseline", "baseline_value", "ratio"}
BENCHES = {
    "actors.pingpong",
    "actors.oneway",
    "actors.ring",
    "actors.spawn_rate",
    "actors.process_memory",
    "actors.restart_p50",
    "actors.restart_p99",
}


def test_quick_json_run_prints_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--json", "--quick"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines, done.stderr
    seen = set()
    for line in lines:
        figure = json.loads(line)
        assert figure.keys() >= KEYS, line
        assert isinstance(figure["value"], int | float), line
        assert isinstance(figure["baseline_value"], int | float), line
        assert figure["value"] > 0, line
        seen.add(figure["bench"])
    assert seen == BENCHES
