"""The dashboard in headless Chromium against a real server process.

`testkit.apps.dashboard_node` (an endpoint with a `Dashboard` and a small supervision tree,
with some load) runs as its own OS process; ``tests/js/dashboard.js`` opens
``/dashboard`` on it with playwright-core, checks the nodes table and the tree, sorts
the process table, clicks the supervised worker ``job.1``, kills it, and waits for the
page to show its supervisor's restart (a new pid at the same place in the tree).

Skipped when ``/usr/bin/chromium`` is missing, unless ``ALIGHT_REQUIRE_BROWSER`` is
set (CI sets it): then a missing browser fails the test.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from testkit import UNIT
from testkit.browser import CHROMIUM, JOB, DashboardNode, require_browser, start_dashboard_node
from testkit.processes import run_node, running_app, uvicorn_run

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane


@pytest.fixture(scope="module")
def dashboard_node() -> Iterator[DashboardNode]:
    node = start_dashboard_node("dash@127.0.0.1", "--load")
    try:
        yield node
    finally:
        node.stop()


def _get(node: DashboardNode, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=10 * UNIT)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_the_page_is_served_self_contained(dashboard_node: DashboardNode) -> None:
    status, headers, body = _get(dashboard_node, "/dashboard")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    page = body.decode()
    assert 'data-node="dash@127.0.0.1"' in page
    assert '<script src="/alight.js"></script>' in page
    assert not re.search(r"""src=["']https?://""", page)  # no CDN: everything from this node


def test_the_socket_refuses_other_origins(dashboard_node: DashboardNode) -> None:
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    path = "/dashboard/socket/websocket?vsn=2.0.0"
    status, _, _ = _get(dashboard_node, path, {**upgrade, "Origin": "http://evil.example"})
    assert status == 403
    # Its own page's origin is allowed (the endpoint itself checks no origin at all).
    status, _, _ = _get(dashboard_node, path, {**upgrade, "Origin": dashboard_node.url("")})
    assert status == 101


def test_a_dns_rebinding_page_is_refused(dashboard_node: DashboardNode) -> None:
    # A page of evil.example whose name now resolves to 127.0.0.1: its Origin matches
    # its Host, so only the Host tells it apart from the dashboard's own page.
    rebound = f"evil.example:{dashboard_node.http_port}"
    status, _, body = _get(dashboard_node, "/dashboard", {"Host": rebound})
    assert status == 403, body
    assert b"Dashboard(endpoint, hosts=[...])" in body  # says what to do
    upgrade = {
        "Host": rebound,
        "Origin": f"http://{rebound}",
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    status, _, _ = _get(dashboard_node, "/dashboard/socket/websocket?vsn=2.0.0", upgrade)
    assert status == 403
    # The names the dashboard is served under still work.
    for host in (f"localhost:{dashboard_node.http_port}", f"127.0.0.1:{dashboard_node.http_port}"):
        status, _, _ = _get(dashboard_node, "/dashboard", {"Host": host})
        assert status == 200, host


def test_only_the_pages_own_script_runs(dashboard_node: DashboardNode) -> None:
    nonces = []
    for _ in range(2):
        status, headers, body = _get(dashboard_node, "/dashboard")
        assert status == 200
        policy = dict(directive.strip().split(" ", 1) for directive in headers["content-security-policy"].split(";"))
        assert "'unsafe-inline'" not in policy["script-src"]
        [nonce] = re.findall(r"'nonce-([A-Za-z0-9_-]{16,})'", policy["script-src"])
        assert f'<script nonce="{nonce}">' in body.decode()
        assert policy["base-uri"] == "'none'"
        assert headers["x-content-type-options"] == "nosniff"
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


def test_the_dashboard_in_chromium_kills_a_worker_and_shows_its_restart(dashboard_node: DashboardNode) -> None:
    require_browser()
    run = run_node("dashboard.js", dashboard_node.url(), str(CHROMIUM), "--kill", JOB, timeout=60 * UNIT)
    assert run.returncode == 0, run.transcript()
    page = run["page"]
    assert page["title"] == "alight dashboard"
    assert page["nodes"] == [{"name": "dash@127.0.0.1", "state": "up"}]
    assert page["snapshot_node"] == "dash@127.0.0.1"
    paths = {row["path"] for row in page["tree"]}
    assert {"alight.root", "alight.root/workers", "alight.root/workers/jobs", JOB} <= paths
    assert "alight.root/(endpoint, endpoint)/dashboard" in paths
    assert {"room:lobby", "room:dev", "room:ops"} <= set(page["topics"])

    orders = run["sorted"]["orders"]
    for key in ("mailbox", "messages"):  # descending by default
        values = orders[key]["values"]
        assert values == sorted(values, reverse=True), key
        assert "sorted" in orders[key]["header"]
    for key in ("name", "status"):  # a first click sorts ascending
        values = orders[key]["values"]
        assert values == sorted(values, key=str.lower) or values == sorted(values), key
        assert "asc" in orders[key]["header"]

    killed = run["killed"]
    assert re.fullmatch(r"<0\.\d+\.0>", killed["before"])
    assert re.fullmatch(r"<0\.\d+\.0>", killed["after"])
    assert killed["after"] != killed["before"]
    assert "job.1" in killed["detail"]
    assert killed["note"] == f"restarted by its supervisor: {killed['before']} → {killed['after']}"
    assert killed["after"] in killed["after_detail"]
    assert run["console"]["errors"] == []


def test_the_dashboard_under_uvicorn(tmp_path: Path) -> None:
    require_browser()
    with running_app("testkit.apps.dashboard_node:asgi_app", tmp_path / "app.log", command=uvicorn_run) as app:
        run = run_node("dashboard.js", app.http("/dashboard"), str(CHROMIUM), timeout=60 * UNIT)
    assert run.returncode == 0, run.transcript()
    page = run["page"]
    assert page["status"] == "live"
    assert [node["name"] for node in page["nodes"]] == [page["snapshot_node"]]
    assert "alight.root/(endpoint, endpoint)/dashboard" in {row["path"] for row in page["tree"]}
    assert run["console"]["errors"] == []
