"""Smoke test of ``benchmarks/cluster.py --json --quick``: it runs, and every line parses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from testkit import UNIT

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

ROOT = Path(__file__).resolve().parents[2]
ALWAYS = {"cluster.remote_send", "cluster.broadcast", "cluster.rtt_p99", "cluster.down_detection"}
KEYS = {"bench", "value", "unit", "baseline", "baseline_value", "ratio", "target", "met"}


@pytest.mark.timeout(90)
def test_cluster_bench_quick_prints_the_available_figures() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "cluster.py"), "--json", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=80 * UNIT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    figures: dict[str, dict[str, Any]] = {}
    for line in proc.stdout.splitlines():
        figure = json.loads(line)
        assert figure.keys() >= KEYS, figure
        assert isinstance(figure["value"], float | int), figure
        assert figure["value"] > 0, figure
        figures[figure["bench"]] = figure
    assert figures.keys() >= ALWAYS, proc.stderr
    # A figure that is not printed says why on stderr.
    for bench in ("cluster.fanout_2nodes", "cluster.presence_convergence"):
        assert bench in figures or f"{bench} skipped:" in proc.stderr
    assert "path" in figures["cluster.broadcast"]["detail"]
