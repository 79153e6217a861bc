"""The nemesis against real processes (issue 11): `benchmarks/faults.py` runs a 3-node
cluster of the reference app with raw-WebSocket and official phoenix.js clients, a
seeded schedule of faults (SIGSTOP shorter and longer than ``down_period``, SIGKILL and
restart, and as root partitions and degraded links between network namespaces), and
gives a verdict from the history its clients recorded. These are its short, bounded
runs; ``benchmarks/faults.py --duration 300`` is the soak.

Each run must leave nothing behind: no process, namespace or bridge of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from testkit import UNIT

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 180 * UNIT


def nemesis(*args: str) -> tuple[dict[str, dict[str, Any]], str]:
    proc = subprocess.run(
        [sys.executable, "benchmarks/faults.py", "--json", "--quick", "--sim-seconds", "0.5", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    figures = {line["bench"]: line for line in map(json.loads, proc.stdout.splitlines()) if line.get("bench")}
    assert figures, f"no figures; exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return figures, proc.stderr


def leftovers() -> list[str]:
    if os.geteuid() != 0:
        return []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [line for line in (netns + links).splitlines() if "alight-" in line or ": alb" in line or " alv" in line]


def verdict(figures: dict[str, dict[str, Any]]) -> None:
    detail = figures["faults.converge_after_heal_p99"]["detail"]
    assert figures["faults.divergences"]["value"] == 0, detail["divergences"] or detail["order_errors"]
    assert figures["faults.spurious_diffs"]["value"] == 0, detail["spurious"]
    assert figures["faults.broadcast_loss_uncounted"]["value"] == 0, detail
    assert detail["faults"] >= 2


@pytest.mark.parametrize("seed", [3, 8])
def test_pauses_shorter_and_longer_than_down_period_converge_on_every_client(seed: int) -> None:
    # The scenario of issue 11: a node stopped for 1-2 s (no diff at all) or 4-10 s
    # (its presences leave the others and come back); every client converges.
    figures, stderr = nemesis("--seed", str(seed), "--duration", "20", "--kinds", "pause_short,pause_long")
    verdict(figures)
    detail = figures["faults.converge_after_heal_p99"]["detail"]
    # Every client library we support took part: phoenix.js, alight.js, alight.client.
    assert (detail["phoenix_js_clients"], detail["alight_js_clients"], detail["alight_client_clients"]) == (3, 3, 3), (
        stderr[-2000:]
    )
    assert leftovers() == []


def test_every_fault_kind_converges() -> None:
    figures, _ = nemesis("--seed", "12", "--duration", "25")
    verdict(figures)
    detail = figures["faults.converge_after_heal_p99"]["detail"]
    if os.geteuid() == 0:
        assert detail["network_faults"], detail["why_no_network_faults"]
    assert leftovers() == []
