"""The dashboard on a real two-node cluster: the page served by node A lists both
nodes, shows node B's supervision tree (asked from B's collector over the mesh), kills
a worker on B, whose supervisor there restarts it, and shows B down once B is SIGKILLed.

Each node is a `testkit.apps.dashboard_node` OS process (own process group, killed in teardown).
With ``ALIGHT_DASHBOARD_SCREENSHOT=docs/dashboard.png`` the test also saves the page
(the README's screenshot is made this way).

Skipped when ``/usr/bin/chromium`` is missing, unless ``ALIGHT_REQUIRE_BROWSER`` is set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from testkit import UNIT
from testkit.browser import CHROMIUM, JOB, DashboardNode, require_browser, start_dashboard_node
from testkit.processes import REPO, run_node

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

SECRET = "test-cluster-secret-0123456789abcdef"


@pytest.fixture
def two_nodes() -> Iterator[tuple[DashboardNode, DashboardNode]]:
    env = {"ALIGHT_CLUSTER_SECRET": SECRET}
    a = start_dashboard_node("a@127.0.0.1", "--load", "--cluster-port", "0", env=env)
    try:
        b = start_dashboard_node("b@127.0.0.1", "--load", "--cluster-port", "0", "--seeds", a.address, env=env)
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


def test_the_dashboard_of_node_a_shows_and_kills_on_node_b(two_nodes: tuple[DashboardNode, DashboardNode]) -> None:
    require_browser()
    a, b = two_nodes
    args = ["--view", b.name, "--kill", JOB, "--down", str(b.proc.pid)]  # B leads its own process group
    screenshot = os.environ.get("ALIGHT_DASHBOARD_SCREENSHOT")
    if screenshot:
        args += ["--screenshot", str(REPO / screenshot)]
    run = run_node("dashboard.js", a.url(), str(CHROMIUM), *args, timeout=60 * UNIT)
    assert run.returncode == 0, run.transcript()
    assert run["page"]["snapshot_node"] == a.name

    viewed = run["viewed"]
    assert viewed["viewing"] == b.name
    assert viewed["snapshot_node"] == b.name
    # The nodes table is always the view of the page's own node: A, and B, both up.
    assert sorted((n["name"], n["state"]) for n in viewed["nodes"]) == [(a.name, "up"), (b.name, "up")]
    paths = {row["path"] for row in viewed["tree"]}
    assert {"alight.root/workers/jobs", JOB, "alight.root/(endpoint, endpoint)/dashboard"} <= paths

    killed = run["killed"]
    assert re.fullmatch(r"<0\.\d+\.0>", killed["after"])  # a pid of B, as B prints it
    assert killed["after"] != killed["before"]
    assert killed["note"].startswith("restarted by its supervisor")

    down = run["down"]  # B was SIGKILLed: A's page says so, in A's view of the cluster
    assert sorted((n["name"], n["state"]) for n in down["nodes"]) == [(a.name, "up"), (b.name, "down")]
    assert down["status"] == f"no answer from {b.name}"
    assert run["console"]["errors"] == []
    if screenshot:
        assert run["screenshot"]["path"].endswith(".png")
