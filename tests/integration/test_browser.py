"""The phoenix client in a real browser (headless Debian Chromium, driven by
``playwright-core``) against the reference app, over WebSocket and long-poll.

The reference app serves no files (its routes are fixed by the issue), so the page
and ``phoenix.js`` (from the pinned npm package) come from a small static server on
127.0.0.1 run by this test; the page connects to the app on its own port, which
also exercises the long-poll CORS preflight (the POSTs are ``application/x-ndjson``).

Skipped when ``/usr/bin/chromium`` is missing, unless ``ALIGHT_REQUIRE_BROWSER`` is
set (CI sets it): then a missing browser fails the test.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from testkit import UNIT
from testkit.processes import JS_DIR, NodeRun, RunningApp, run_node

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

CHROMIUM = Path("/usr/bin/chromium")

PAGE = """<!doctype html>
<html>
<head><meta charset="utf-8"><link rel="icon" href="data:,"><title>alight conformance</title></head>
<body><script src="phoenix.js"></script></body>
</html>
"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A page loading the pinned phoenix.js, from a static server on 127.0.0.1."""
    root = tmp_path_factory.mktemp("page")
    (root / "index.html").write_text(PAGE)
    shutil.copy(JS_DIR / "node_modules" / "phoenix" / "priv" / "static" / "phoenix.js", root / "phoenix.js")
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
def browser_run(page_url: str, reference_app: RunningApp) -> NodeRun:
    if not CHROMIUM.exists():
        if os.environ.get("ALIGHT_REQUIRE_BROWSER"):
            pytest.fail(f"ALIGHT_REQUIRE_BROWSER is set but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium; ./dev test does it)")
    run = run_node("browser.js", page_url, reference_app.host, str(CHROMIUM), timeout=45 * UNIT)
    assert run.returncode == 0, run.transcript()
    return run


@pytest.mark.parametrize("transport", ["websocket", "longpoll"])
def test_phoenix_client_in_chromium(browser_run: NodeRun, transport: str) -> None:
    seen = browser_run[transport]
    assert "Chrome" in seen["user_agent"]
    assert seen["transport"] == ("WebSocket" if transport == "websocket" else "LongPoll")
    assert seen["join"] == {"status": "ok", "response": {"joined": "browser"}}
    assert seen["join_b"] == {"status": "ok", "response": {"joined": "browser"}}
    assert seen["ping"] == {"status": "ok", "response": {"from": "the browser"}}
    assert seen["shouts"] == {"a": [{"msg": "from chromium"}], "b": [{"msg": "from chromium"}]}
    assert seen["user"] == {"status": "ok", "response": {"user_id": "browser-a"}}
    assert seen["console_errors"] == []
