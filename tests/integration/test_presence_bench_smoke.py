"""Smoke test of ``benchmarks/presence.py``: ``--json --quick`` runs and prints every figure.

It checks the shape of the report, not the speed (the figures are for people to
read against the targets of issue 4).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "presence.py"
KEYS = {"bench", "value", "unit", "baseline", "baseline_value", "ratio"}
BENCHES = {
    "presence.track_10000",
    "presence.list_1000",
    "presence.list_10000",
    "presence.list_100000",
    "presence.memory",
    "presence.merge",
}


def test_quick_json_run_prints_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--json", "--quick"],
        capture_output=True,
        text=True,
        timeout=30,
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
    assert seen == BENCHES, done.stdout
