"""alight's own browser client, ``channels/static/alight.js``, served by every
endpoint at ``GET /alight.js`` (a script defining ``alight``) and ``GET /alight.mjs``
(the ES module build of the same source).

The HTTP tests fetch both from the reference app. The browser tests run headless Debian
Chromium (driven by ``playwright-core``, tests/js/alight_browser.js) on pages from a
small static server on 127.0.0.1: one whose script tag loads ``/alight.js`` from the
running reference app, one whose module script imports ``/alight.mjs``. Over WebSocket
and long-poll, vsn 2.0.0 and 1.0.0, three users drive every event of the reference app:
join ok and error, replies (ok, error, binary, async), pushes, shouts, the HTTP
broadcast route, presence (three users, a leave), a channel crash and its rejoin, a
dropped connection (reconnect and rejoin), heartbeats (WebSocket only), ``phx_close``.
Then the reconnect backoff's jitter, a connection the app refuses (backoff, no tight
loop), the fallback to long-poll when the WebSocket is refused or mute (a proxy in the
Node script), the long-poll requests on the wire, and the ES module build.

Skipped when ``/usr/bin/chromium`` is missing, unless ``ALIGHT_REQUIRE_BROWSER`` is
set (CI sets it): then a missing browser fails the test.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from testkit import UNIT
from testkit.browser import CHROMIUM, require_chromium
from testkit.processes import REPO, NodeRun, RunningApp, run_node

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

SCRIPT = REPO / "channels" / "static" / "alight.js"

PAGE = """<!doctype html>
<html>
<head><meta charset="utf-8"><link rel="icon" href="data:,"><title>alight.js</title></head>
<body><script src="http://{host}/alight.js"></script></body>
</html>
"""
MODULE_PAGE = """<!doctype html>
<html>
<head><meta charset="utf-8"><link rel="icon" href="data:,"><title>alight.mjs</title></head>
<body><script type="module">
import alight, * as named from "http://{host}/alight.mjs"
window.imported = {{default: alight, named: {{...named}}}}
</script></body>
</html>
"""
MODES = [("websocket", "2.0.0"), ("websocket", "1.0.0"), ("longpoll", "2.0.0"), ("longpoll", "1.0.0")]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


def _status_of_error(request: urllib.request.Request | str) -> int:
    """The status of a request that answers with an HTTP error (closing the response)."""
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5 * UNIT)
    with raised.value:
        return raised.value.code


@pytest.mark.parametrize("path", ["/alight.js", "/alight.mjs"])
def test_endpoint_serves_both_builds(reference_app: RunningApp, path: str) -> None:
    with urllib.request.urlopen(reference_app.http(path), timeout=5 * UNIT) as response:
        body = response.read()
        assert response.status == 200
        assert response.headers["content-type"] == "application/javascript; charset=utf-8"
        assert "max-age" in response.headers["cache-control"]
        # A module script from another origin is fetched with CORS.
        assert response.headers["access-control-allow-origin"] == "*"
        etag = response.headers["etag"]
    request = urllib.request.Request(reference_app.http(path), headers={"If-None-Match": etag})
    assert _status_of_error(request) == 304
    head = urllib.request.Request(reference_app.http(path), method="HEAD")
    with urllib.request.urlopen(head, timeout=5 * UNIT) as response:
        assert response.status == 200
        assert int(response.headers["content-length"]) == len(body)
        assert response.read() == b""


def test_the_module_build_is_the_script_factory_with_exports(reference_app: RunningApp) -> None:
    """One source of truth: the script is the file as it is; the module is the script's
    factory function (between its markers), called with globalThis, and exports."""
    script = SCRIPT.read_text()
    with urllib.request.urlopen(reference_app.http("/alight.js"), timeout=5 * UNIT) as response:
        assert response.read().decode() == script
    with urllib.request.urlopen(reference_app.http("/alight.mjs"), timeout=5 * UNIT) as response:
        module = response.read().decode()
    factory = script.split("// alight:factory begin", 1)[1].split("\n", 1)[1].split("// alight:factory end")[0]
    assert f"const alight = ({factory.rstrip()})(globalThis)\n" in module
    assert "root.alight" not in module
    for name in ("Socket", "Channel", "Push", "Presence", "LongPoll", "Serializer", "vsn"):
        assert f"export const {name} = alight.{name}\n" in module
    assert module.endswith("export default alight\n")


def test_other_methods_and_paths_are_not_the_script(reference_app: RunningApp) -> None:
    request = urllib.request.Request(reference_app.http("/alight.js"), data=b"x", method="POST")
    assert _status_of_error(request) == 404
    assert _status_of_error(reference_app.http("/static/alight.js")) == 404


@pytest.fixture(scope="module")
def page_urls(tmp_path_factory: pytest.TempPathFactory, reference_app: RunningApp) -> Iterator[tuple[str, str]]:
    """Two pages from a static server on 127.0.0.1: one loading alight.js from the
    reference app, one importing alight.mjs."""
    root = tmp_path_factory.mktemp("alight_page")
    (root / "index.html").write_text(PAGE.format(host=reference_app.host))
    (root / "module.html").write_text(MODULE_PAGE.format(host=reference_app.host))
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        yield f"{base}/index.html", f"{base}/module.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5 * UNIT)


@pytest.fixture(scope="module")
def alight_browser_run(page_urls: tuple[str, str], reference_app: RunningApp) -> NodeRun:
    require_chromium()
    run = run_node("alight_browser.js", *page_urls, reference_app.host, str(CHROMIUM), timeout=120 * UNIT)
    assert run.returncode == 0, run.transcript()
    return run


def test_loads_from_the_app(alight_browser_run: NodeRun) -> None:
    page = alight_browser_run["page"]
    assert page["has_alight"] is True
    assert page["has_phoenix"] is False
    assert "Chrome" in page["user_agent"]
    # Chromium logs the WebSockets the fallback test's proxy and the refusal test's app
    # refuse; nothing else.
    expected = ("user_id=fallback-refuse", "user_id=refused")
    assert [e for e in page["console_errors"] if not any(x in e for x in expected)] == []


@pytest.mark.parametrize(("transport", "vsn"), MODES)
def test_every_event_of_the_reference_app(
    alight_browser_run: NodeRun, reference_app: RunningApp, transport: str, vsn: str
) -> None:
    seen = alight_browser_run[f"mode:{transport}:{vsn}"]
    name = f"js-{transport}-{vsn}"
    assert seen["url"] == f"ws://{reference_app.host}/socket/websocket?user_id=alice&vsn={vsn}"
    assert seen["conn"] == ("WebSocket" if transport == "websocket" else "LongPoll")
    assert seen["join"] == seen["join_b"] == seen["join_c"] == {"status": "ok", "response": {"joined": name}}
    assert seen["join_error"] == {"status": "error", "response": {"reason": "unauthorized"}}
    assert seen["forbidden_state"] == "errored"
    assert seen["ping"] == {"status": "ok", "response": {"from": "alight.js"}}
    assert seen["error_reply"] == {"status": "error", "response": {"reason": "nope"}}
    assert seen["user"] == {"status": "ok", "response": {"user_id": "alice"}}
    assert seen["unknown"] == {"status": "error", "response": {"reason": "unknown event nope"}}
    assert seen["push_me"] == {"status": "ok", "response": {}}
    assert seen["pushed"] == [{"x": 1}]
    assert seen["async"] == {"status": "ok", "response": {"later": True}}
    assert seen["burst"] == [{"status": "ok", "response": {"n": n}} for n in (1, 2, 3)]
    if vsn == "1.0.0":
        assert "vsn 2.0.0" in seen["binary"]["thrown"]
    elif transport == "websocket":
        assert seen["binary"] == {"status": "ok", "is_buffer": True, "bytes": [1, 2, 3, 250]}
    shout = [{"msg": "from alight.js"}]
    assert seen["shouts"] == {"a": shout, "b": shout, "c": shout}
    assert seen["announces"] == {"a": [{"n": 1}], "b": [{"n": 1}], "c": [{"n": 1}]}
    assert seen["console_errors"] == []


@pytest.mark.parametrize(("transport", "vsn"), MODES)
def test_presence_with_three_users(alight_browser_run: NodeRun, transport: str, vsn: str) -> None:
    seen = alight_browser_run[f"mode:{transport}:{vsn}"]
    three = [["alice", ["chromium-a"]], ["bob", ["chromium-b"]], ["carol", ["chromium-c"]]]
    assert seen["presence_three"] == {"a": three, "b": three, "c": three}
    for joins in seen["presence_joins"].values():
        # Each user first appears as a new key with one meta (a diff that repeats what
        # the state already had is a join of an existing key, as in phoenix.js).
        firsts = {key: (kind, metas) for key, kind, metas in reversed(joins)}
        assert firsts == {"alice": ("new", 1), "bob": ("new", 1), "carol": ("new", 1)}
    assert seen["presence_after_leave"] == {"a": three[:2], "b": three[:2]}
    assert seen["presence_leaves"] == {"a": [["carol", 0, 1]], "b": [["carol", 0, 1]]}


@pytest.mark.parametrize(("transport", "vsn"), MODES)
def test_crash_reconnect_close_and_leave(alight_browser_run: NodeRun, transport: str, vsn: str) -> None:
    seen = alight_browser_run[f"mode:{transport}:{vsn}"]
    assert seen["state_after_crash"] == "errored"
    assert seen["crash_rejoin_ping"] == {"status": "ok", "response": {"after": "crash"}}
    # alice's crashed incarnation left bob's presence (her last meta), then came back.
    assert seen["crash_leaves_b"][0] == ["alice", 0, 1]
    assert seen["reconnect_ping"] == {"status": "ok", "response": {"after": "reconnect"}}
    if transport == "websocket":
        assert seen["heartbeats_sent"] >= 2
    else:
        assert seen["heartbeats_sent"] == 0  # long-poll sends none, as phoenix.js
    assert seen["stop"] == {"status": "ok", "response": {}}
    assert seen["after_close"] == {"state": "closed", "closes": 1, "in_socket": False}
    assert seen["after_leave"] == {"state": "closed", "in_socket": False}
    assert seen["after_disconnect"] == "closed"


@pytest.mark.parametrize("transport", ["websocket", "longpoll"])
def test_refused_connection_backs_off(alight_browser_run: NodeRun, transport: str) -> None:
    seen = alight_browser_run["backoff"][transport]
    assert seen["opens"] == 0
    # The default steps 10, 50, 100, 150, 200 ms between the closes of attempts 1-6,
    # each less up to half of it (jitter), plus the time a refusal takes: no tight loop.
    for gap, step in zip(seen["gaps"], (10, 50, 100, 150, 200), strict=True):
        assert gap >= step * 0.5 - 5, seen["gaps"]


def test_reconnect_backoff_has_jitter(alight_browser_run: NodeRun) -> None:
    gaps = alight_browser_run["backoff"]["gaps"]
    assert len(gaps) >= 5
    # 200 ms less up to 50 % at random (timers may fire a little late, never early).
    assert all(95 <= gap <= 400 for gap in gaps), gaps
    assert len(set(gaps)) > 1, gaps


@pytest.mark.parametrize("websocket", ["refuse", "mute"])
def test_falls_back_to_longpoll_and_remembers_it(alight_browser_run: NodeRun, websocket: str) -> None:
    seen = alight_browser_run["fallback"][websocket]
    assert seen["join"] == {"status": "ok", "response": {"joined": f"fallback-{websocket}"}}
    assert seen["ping"] == {"status": "ok", "response": {"n": 1}}
    assert seen["transport"] == seen["conn"] == "LongPoll"
    assert seen["remembered"] == "true"
    assert seen["first_conn_again"] == "LongPoll"


def test_no_fallback_when_the_websocket_works(alight_browser_run: NodeRun) -> None:
    seen = alight_browser_run["fallback"]["working"]
    assert seen["join"] == {"status": "ok", "response": {"joined": "no-fallback"}}
    assert seen["conn"] == "WebSocket"
    assert seen["passed"] is True
    assert seen["remembered"] is None


def test_es_module_build(alight_browser_run: NodeRun) -> None:
    seen = alight_browser_run["module"]
    assert seen["names"] == ["Channel", "LongPoll", "Presence", "Push", "Serializer", "Socket", "default", "vsn"]
    assert seen["default_is_namespace"] is True
    assert seen["global_alight"] == "undefined"
    for transport in ("websocket", "longpoll"):
        assert seen[transport]["join"] == {"status": "ok", "response": {"joined": f"module-{transport}"}}
        assert seen[transport]["ping"] == {"status": "ok", "response": {"m": 1}}
    assert alight_browser_run["module_page"]["console_errors"] == []


@pytest.mark.parametrize("vsn", ["2.0.0", "1.0.0"])
def test_longpoll_requests_on_the_wire(alight_browser_run: NodeRun, reference_app: RunningApp, vsn: str) -> None:
    """What alice's long-poll transport sent (docs/protocol.md §5.1): the first GET has no
    token yet (a bare ``&``), later ones carry it; GETs accept JSON; with vsn 2.0.0 a
    POST is ndjson and pushes made in one tick share one; a vsn 1.0.0 frame (a JSON
    object) goes alone, as ``application/json``."""
    base = f"http://{reference_app.host}/socket/longpoll?user_id=alice&vsn={vsn}&"
    requests = [r for r in alight_browser_run["page"]["longpoll_requests"] if r["url"].startswith(base)]
    gets = [r for r in requests if r["method"] == "GET"]
    posts = [r for r in requests if r["method"] == "POST"]
    assert gets[0]["url"] == base
    assert len(gets) > 3
    assert all(r["url"].startswith(base + "token=") for r in gets[1:] if r["url"] != base)
    assert all(r["accept"] == "application/json" for r in gets)
    assert posts
    assert all(r["url"].startswith(base + "token=") for r in posts)
    if vsn == "2.0.0":
        assert {r["content_type"] for r in posts} == {"application/x-ndjson"}
        assert max(r["lines"] for r in posts) >= 3  # the burst
    else:
        assert {r["content_type"] for r in posts} == {"application/json"}
        assert {r["lines"] for r in posts} == {1}


def test_longpoll_auth_token_header(alight_browser_run: NodeRun, reference_app: RunningApp) -> None:
    seen = alight_browser_run["fallback"]["authed"]
    assert seen["join"] == {"status": "ok", "response": {"joined": "authed"}}
    assert seen["ping"] == {"status": "ok", "response": {}}
    base = f"http://{reference_app.host}/socket/longpoll?user_id=authed&"
    requests = [r for r in alight_browser_run["page"]["longpoll_requests"] if r["url"].startswith(base)]
    assert {r["auth_token"] for r in requests if r["method"] == "GET"} == {"secret-token"}
    assert {r["auth_token"] for r in requests if r["method"] == "POST"} == {None}


def test_presence_keys_that_objects_inherit_are_presences_like_any_other() -> None:
    """A user named "constructor", "toString" or "__proto__" (names are the users'
    choice in the chat demo) is listed, gains and loses devices, and leaves, instead of
    making every other page's presence handler throw (tests/js/alight_presence_keys.js,
    Presence in Node: it is pure)."""
    run = run_node("alight_presence_keys.js")
    assert run.returncode == 0, run.stderr
    keys = ["__proto__", "alice", "constructor", "hasOwnProperty", "toString", "valueOf"]
    state = run["state"]  # fails with the error, if the check threw
    assert state["names"] == keys
    assert sorted(state["joined"]) == keys
    diff = run["diff_join_then_leave"]
    assert diff["names"] == {"devices": [f"{key}:2" for key in keys], "after": []}
    assert sorted(diff["left"]) == keys
    resync = run["resync"]
    assert resync["names"] == ["__proto__", "hasOwnProperty", "toString", "valueOf"]
    assert sorted(resync["left"]) == ["alice", "constructor"]


def test_buffered_pushes_leave_no_bindings_and_timed_out_ones_leave_the_buffer() -> None:
    """alight.js's Socket over a scripted in-memory transport (tests/js/alight_fake_transport.js):
    pushes made before the join are sent and answered with no reply binding left behind
    for the ref they held while buffered; on a channel that never joins, pushes that
    timed out do not pile up in its buffer."""
    run = run_node("alight_fake_transport.js")
    assert run.returncode == 0, run.stderr
    buffered = run["buffered_pushes_leave_no_bindings"]
    assert buffered["replies"] == [0, 1, 2]
    assert buffered["pings_sent"] == 3
    assert buffered["reply_bindings_left"] == 0
    never = run["timed_out_pushes_leave_the_buffer"]
    assert never["timed_out"] == 20
    assert never["buffered"] == 1


def test_longpoll_leave_just_before_disconnect_reaches_the_server(reference_app: RunningApp) -> None:
    """Over long-poll (alight.js in Node, tests/js/alight_longpoll_leave.js),
    ``leave(); disconnect()`` lets the phx_leave's POST finish first: the watcher sees
    the presence go at once, not when the server ends the idle session (15 s later)."""
    run = run_node("alight_longpoll_leave.js", reference_app.host, timeout=60 * UNIT)
    assert run.returncode == 0, run.transcript()
    left = run["left"]
    assert left["before"] == ["alice", "bob"]
    assert left["after"] == ["alice"]
