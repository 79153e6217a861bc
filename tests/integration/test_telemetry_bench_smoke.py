"""Smoke test of ``benchmarks/telemetry.py``: ``--json --quick`` prints every figure.

It starts two alight servers (metrics off, then on) and the load generator as real
processes on 127.0.0.1, and checks the shape of the report, not the speed: the figures
are for people to read, not for a test to assert.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from testkit import UNIT

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "telemetry.py"
KEYS = {"bench", "value", "unit", "baseline", "baseline_value", "ratio"}
FIGURES = {
    "telemetry.execute_no_handler",
    "telemetry.execute_one_handler",
    "telemetry.has_handlers",
    "telemetry.fanout_metrics",
}


def test_quick_json_run_prints_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--json", "--quick"],
        capture_output=True,
        text=True,
        timeout=30 * UNIT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = set()
    for line in done.stdout.splitlines():
        figure = json.loads(line)
        assert figure.keys() >= KEYS, line
        for key in ("value", "baseline_value", "ratio"):
            assert isinstance(figure[key], int | float), line
            assert figure[key] > 0, line
        seen.add(figure["bench"])
    assert seen == FIGURES, done.stdout
