"""alight's own browser client, ``channels/static/alight.js``, served by every
endpoint at ``GET /alight.js``.

The HTTP tests fetch it from the reference app. The browser test runs headless Debian
Chromium (driven by ``playwright-core``, tests/js/alight_browser.js) on a page from a
small static server on 127.0.0.1 whose script tag loads ``/alight.js`` from the running
reference app, and drives the reference app over WebSocket: join ok and error, replies
(ok, error, binary), broadcasts, presence with two sockets, a channel crash and its
rejoin, a dropped connection (reconnect and rejoin), heartbeats, ``phx_close``.

Skipped when ``/usr/bin/chromium`` is missing, unless ``ALIGHT_REQUIRE_BROWSER`` is
set (CI sets it): then a missing browser fails the test.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ..conftest import UNIT
from .conftest import REPO, NodeRun, RunningApp, run_node

CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = REPO / "channels" / "static" / "alight.js"

PAGE = """<!doctype html>
<html>
<head><meta charset="utf-8"><link rel="icon" href="data:,"><title>alight.js</title></head>
<body><script src="http://{host}/alight.js"></script></body>
</html>
"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


def _status_of_error(request: urllib.request.Request | str) -> int:
    """The status of a request that answers with an HTTP error (closing the response)."""
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5 * UNIT)
    with raised.value:
        return raised.value.code


def test_endpoint_serves_alight_js(reference_app: RunningApp) -> None:
    with urllib.request.urlopen(reference_app.http("/alight.js"), timeout=5 * UNIT) as response:
        body = response.read()
        assert response.status == 200
        assert response.headers["content-type"] == "application/javascript; charset=utf-8"
        assert "max-age" in response.headers["cache-control"]
        etag = response.headers["etag"]
    assert body == SCRIPT.read_bytes()
    assert b"root.alight = {" in body
    request = urllib.request.Request(reference_app.http("/alight.js"), headers={"If-None-Match": etag})
    assert _status_of_error(request) == 304
    head = urllib.request.Request(reference_app.http("/alight.js"), method="HEAD")
    with urllib.request.urlopen(head, timeout=5 * UNIT) as response:
        assert response.status == 200
        assert int(response.headers["content-length"]) == len(body)
        assert response.read() == b""


def test_other_methods_and_paths_are_not_the_script(reference_app: RunningApp) -> None:
    request = urllib.request.Request(reference_app.http("/alight.js"), data=b"x", method="POST")
    assert _status_of_error(request) == 404
    assert _status_of_error(reference_app.http("/static/alight.js")) == 404


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory, reference_app: RunningApp) -> Iterator[str]:
    """A page loading alight.js from the reference app, from a static server on 127.0.0.1."""
    root = tmp_path_factory.mktemp("alight_page")
    (root / "index.html").write_text(PAGE.format(host=reference_app.host))
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5 * UNIT)


@pytest.fixture(scope="module")
def alight_browser_run(page_url: str, reference_app: RunningApp) -> NodeRun:
    if not CHROMIUM.exists():
        if os.environ.get("ALIGHT_REQUIRE_BROWSER"):
            pytest.fail(f"ALIGHT_REQUIRE_BROWSER is set but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium; ./dev test does it)")
    run = run_node("alight_browser.js", page_url, reference_app.host, str(CHROMIUM), timeout=60 * UNIT)
    assert run.returncode == 0, run.transcript()
    return run


@pytest.fixture(scope="module")
def seen(alight_browser_run: NodeRun) -> dict[str, Any]:
    return alight_browser_run["scenario"]


def test_loads_from_the_app(seen: dict[str, Any], reference_app: RunningApp) -> None:
    assert seen["has_alight"] is True
    assert seen["has_phoenix"] is False
    assert "Chrome" in seen["user_agent"]
    assert seen["url"] == f"ws://{reference_app.host}/socket/websocket?user_id=alice&vsn=2.0.0"
    assert seen["console_errors"] == []


def test_join_ok_and_error(seen: dict[str, Any]) -> None:
    assert seen["join"] == {"status": "ok", "response": {"joined": "js"}}
    assert seen["join_b"] == {"status": "ok", "response": {"joined": "js"}}
    assert seen["join_error"] == {"status": "error", "response": {"reason": "unauthorized"}}
    assert seen["forbidden_state"] == "errored"


def test_replies(seen: dict[str, Any]) -> None:
    assert seen["ping"] == {"status": "ok", "response": {"from": "alight.js"}}
    assert seen["error_reply"] == {"status": "error", "response": {"reason": "nope"}}
    assert seen["user"] == {"status": "ok", "response": {"user_id": "alice"}}
    assert seen["binary"] == {"status": "ok", "is_buffer": True, "bytes": [1, 2, 3, 250]}


def test_shout_broadcast(seen: dict[str, Any]) -> None:
    assert seen["shouts"] == {"a": [{"msg": "from alight.js"}], "b": [{"msg": "from alight.js"}]}


def test_presence_with_two_sockets(seen: dict[str, Any]) -> None:
    both = [["alice", ["chromium-a"]], ["bob", ["chromium-b"]]]
    assert seen["presence_a"] == both
    assert seen["presence_b"] == both
    assert seen["presence_syncs_a"] >= 1
    # bob saw himself and alice join, each first as a new key with one meta (a diff that
    # repeats what the state already had is a join of an existing key, as in phoenix.js).
    joins = seen["presence_joins_b"]
    firsts = {key: (kind, metas) for key, kind, metas in reversed(joins)}
    assert firsts == {"alice": ("new", 1), "bob": ("new", 1)}
    assert all(metas == 1 for _, _, metas in joins)


def test_crash_then_rejoin(seen: dict[str, Any]) -> None:
    assert seen["state_after_crash"] == "errored"
    assert seen["crash_rejoin_ping"] == {"status": "ok", "response": {"after": "crash"}}
    # alice's crashed incarnation left bob's presence (her last meta), then came back.
    assert seen["crash_leaves_b"][0] == ["alice", 0, 1]


def test_reconnect_rejoin_and_heartbeat(seen: dict[str, Any]) -> None:
    assert seen["reconnect_ping"] == {"status": "ok", "response": {"after": "reconnect"}}
    assert seen["heartbeat_replies"] >= 2


def test_reconnect_backoff_has_jitter(seen: dict[str, Any]) -> None:
    gaps = seen["backoff_gaps"]
    assert len(gaps) >= 5
    # 200 ms less up to 50 % at random (timers may fire a little late, never early).
    assert all(95 <= gap <= 400 for gap in gaps), gaps
    assert len(set(gaps)) > 1, gaps


def test_phx_close_leave_and_disconnect(seen: dict[str, Any]) -> None:
    assert seen["stop"] == {"status": "ok", "response": {}}
    assert seen["after_close"] == {"state": "closed", "closes": 1, "in_socket": False}
    assert seen["after_leave"] == {"state": "closed", "in_socket": False}
    assert seen["after_disconnect"] == "closed"
