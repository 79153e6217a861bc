"""Smoke test of ``benchmarks/dashboard.py``: ``--json --quick`` runs and prints every
figure with its baseline. The figures are for people to read, not for a test to assert."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from testkit import UNIT

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "dashboard.py"


def test_quick_json_run_prints_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", "--quick"],
        capture_output=True,
        text=True,
        timeout=60 * UNIT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = [json.loads(line) for line in done.stdout.splitlines()]
    assert {f["bench"] for f in figures} == {
        "dashboard.snapshot_200",
        "dashboard.snapshot_bytes_200",
        "dashboard.snapshot_channels_200",
    }
    for figure in figures:
        assert set(figure) >= {"bench", "value", "unit", "baseline", "baseline_value", "ratio"}
        assert figure["value"] > 0
        assert figure["baseline_value"] > 0
        assert figure["baseline"] == "naive table"
