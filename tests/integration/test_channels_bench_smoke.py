"""Smoke test of ``benchmarks/channels.py``: ``--json --quick --target none`` measures every baseline.

It runs the raw picows and websockets servers and the load generator as real processes on
127.0.0.1 and checks the shape of the report, not the speed: the figures are for people to
read against the issue's targets, not for a test to assert.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from testkit import UNIT

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "channels.py"
KEYS = {"bench", "value", "unit", "baseline", "baseline_value", "ratio"}
BASELINES = {
    "channels.fanout_1000.websockets",
    "channels.fanout_1000.picows",
    "channels.fanout_5000.websockets",
    "channels.fanout_5000.picows",
    "channels.latency_p99",
    "channels.connection_memory",
    "channels.join_rate",
    "channels.ping_p99",
}


def test_quick_baselines_print_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--json", "--quick", "--target", "none"],
        capture_output=True,
        text=True,
        timeout=25 * UNIT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = [json.loads(line) for line in done.stdout.splitlines()]
    assert figures, done.stderr
    seen = set()
    for figure in figures:
        assert figure.keys() >= KEYS, figure
        assert isinstance(figure["baseline_value"], int | float), figure
        assert figure["baseline_value"] > 0, figure
        seen.add(figure["bench"])
        if figure["bench"] in BASELINES:
            assert figure["value"] is None, figure  # --target none measures no alight figure
            assert figure["ratio"] is None, figure
    assert seen >= BASELINES
    capacity = next(f for f in figures if f["bench"] == "channels.loadgen_capacity")
    assert capacity["value"] > 0
