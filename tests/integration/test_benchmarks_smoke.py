"""Smoke tests of ``benchmarks/actors.py``, ``benchmarks/presence.py`` and
``benchmarks/clients.py`` (one server process, about a second): ``--json --quick`` runs
and prints every figure.

They check the shape of the report, not the speed: the figures themselves are for
people to read (and for the targets in the issues), not for a test to assert.
(``channels.py`` and ``cluster.py`` start servers and nodes: they have their own.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from testkit import UNIT

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
KEYS = {"bench", "value", "unit", "baseline", "baseline_value", "ratio"}
FIGURES = {
    "clients.py": {"clients.python_receive"},
    "actors.py": {
        "actors.pingpong",
        "actors.oneway",
        "actors.ring",
        "actors.spawn_rate",
        "actors.process_memory",
        "actors.restart_p50",
        "actors.restart_p99",
    },
    "presence.py": {
        "presence.track_10000",
        "presence.list_1000",
        "presence.list_10000",
        "presence.list_100000",
        "presence.memory",
        "presence.merge",
    },
}


@pytest.mark.parametrize("script", sorted(FIGURES))
def test_quick_json_run_prints_every_figure(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--json", "--quick"],
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
        assert isinstance(figure["value"], int | float), line
        assert isinstance(figure["baseline_value"], int | float), line
        assert figure["value"] > 0, line
        seen.add(figure["bench"])
    assert seen == FIGURES[script], done.stdout
