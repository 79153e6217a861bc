"""The reference app on a two-node cluster: channels, presence and long-poll across nodes.

Each node is an OS process (`testkit.apps.app_node`: the reference endpoint with presence), in
its own process group, resumed and killed in teardown. Every test runs twice: the nodes linked
by the mesh (a `Distribution`), and the nodes sharing only a Redis server started by the test
(`alight.cluster.redis.RedisPubSub`). The phoenix
client part runs ``tests/js/cluster.js``; the rest drives the nodes over raw HTTP and
polls their test routes with bounded loops (every bound a multiple of `UNIT`).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import pytest
from testkit import UNIT
from testkit.cluster import LEAVE_BOUND, WAIT, AppNode, check_cluster_js, wait_for

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane


def test_phoenix_client_across_nodes(app_cluster: tuple[AppNode, AppNode]) -> None:
    a, b = app_cluster
    check_cluster_js(a, b)
    # Each broadcast made on A (shout, news, disconnect) crossed to B once, however
    # many subscribers it had there; none was made on B.
    stats_a, stats_b = a.request("GET", "/test/stats"), b.request("GET", "/test/stats")
    assert stats_a["forwarded"] == stats_b["received"] == 3
    assert stats_b["forwarded"] == 0


def _longpoll(node: AppNode, method: str, token: str, lines: list[list[Any]] | None = None) -> Any:
    path = f"/socket/longpoll?vsn=2.0.0&user_id=lp&token={token}"
    if method == "GET":
        return node.request("GET", path)
    body = "\n".join(json.dumps(line) for line in lines or []).encode()
    return node.request("POST", path, body, {"content-type": "application/x-ndjson"})


def _replies(messages: list[str]) -> dict[str, Any]:
    """ref -> reply payload of the ``phx_reply`` messages among ``messages``."""
    out = {}
    for text in messages:
        _join_ref, ref, _topic, event, payload = json.loads(text)
        if event == "phx_reply":
            out[ref] = payload
    return out


def test_longpoll_requests_alternate_between_nodes(app_cluster: tuple[AppNode, AppNode]) -> None:
    a, b = app_cluster
    created = a.request("GET", "/socket/longpoll?vsn=2.0.0&user_id=lp")
    assert created["status"] == 410
    token = created["token"]
    # The session lives on A; B finds it through PubSub.
    assert _longpoll(b, "POST", token, [["1", "1", "room:lp", "phx_join", {"device": "lp"}]])["status"] == 200
    seen: dict[str, Any] = {}
    for node in (a, b, a, b):
        if "1" in seen:
            break
        got = _longpoll(node, "GET", token)
        assert got["status"] in (200, 204), got
        seen.update(_replies(got["messages"]))
    assert seen["1"]["status"] == "ok"
    assert _longpoll(a, "POST", token, [["1", "2", "room:lp", "ping", {"x": 1}]])["status"] == 200
    assert _longpoll(b, "POST", token, [["1", "3", "room:lp", "ping", {"x": 2}]])["status"] == 200
    for node in (b, a, b, a):
        if "2" in seen and "3" in seen:
            break
        got = _longpoll(node, "GET", token)
        assert got["status"] in (200, 204), got
        seen.update(_replies(got["messages"]))
    assert seen["2"] == {"status": "ok", "response": {"x": 1}}
    assert seen["3"] == {"status": "ok", "response": {"x": 2}}
    # Its presence (tracked on A) is listed on B too.
    wait_for("the long-poll user in B's presence", lambda: b.presence("room:lp") == ["lp"])


def test_sigkill_during_broadcasts_a_keeps_serving_and_presences_leave_within_5s(
    app_cluster: tuple[AppNode, AppNode],
) -> None:
    a, b = app_cluster
    a.track("room:k", "on_a")
    b.track("room:k", "on_b")
    wait_for("both presences on A", lambda: a.presence("room:k") == ["on_a", "on_b"])
    answers: list[Any] = []
    stop = threading.Event()

    def broadcast_to_a() -> None:
        # A steady stream of cluster-wide broadcasts through A, bounded in count and time.
        body = json.dumps({"topic": "room:k", "event": "tick", "payload": {"n": 1}}).encode()
        deadline = time.monotonic() + 10 * UNIT
        while not stop.is_set() and len(answers) < 50_000 and time.monotonic() < deadline:
            try:
                answers.append(a.request("POST", "/api/broadcast", body, {"content-type": "application/json"}))
            except Exception as error:  # noqa: BLE001 - recorded, asserted below
                answers.append(repr(error))

    streamer = threading.Thread(target=broadcast_to_a)
    streamer.start()
    try:
        wait_for("broadcasts flowing", lambda: len(answers) >= 20)
        b.signal(signal.SIGKILL)
        served_at_kill = len(answers)
        left = wait_for("on_b leaving A", lambda: a.presence("room:k") == ["on_a"])
        wait_for("broadcasts still served after the kill", lambda: len(answers) >= served_at_kill + 20)
    finally:
        stop.set()
        streamer.join(15 * UNIT)
    assert left < LEAVE_BOUND
    assert answers
    assert all(answer == {"ok": True} for answer in answers), [x for x in answers if x != {"ok": True}][:3]


def test_sigstop_presences_leave_then_return_and_converge(app_cluster: tuple[AppNode, AppNode]) -> None:
    a, b = app_cluster
    a.track("room:s", "on_a")
    b.track("room:s", "on_b")
    both = ["on_a", "on_b"]
    wait_for("both presences on A", lambda: a.presence("room:s") == both)
    wait_for("both presences on B", lambda: b.presence("room:s") == both)
    b.signal(signal.SIGSTOP)
    left = wait_for("on_b leaving A", lambda: a.presence("room:s") == ["on_a"])
    assert left < LEAVE_BOUND
    if a.address != "-":  # the mesh (over Redis, no link to declare down)
        wait_for("b declared down on A", lambda: a.nodes() == [])  # paused beyond the down period
    b.signal(signal.SIGCONT)
    back = wait_for("on_b back on A", lambda: a.presence("room:s") == both)
    assert back < 10.0
    wait_for("B converged", lambda: b.presence("room:s") == both, timeout=10.0 - back)
    assert a.presence("room:s") == b.presence("room:s") == both


def test_orderly_stop_drops_presences_at_once(app_cluster: tuple[AppNode, AppNode]) -> None:
    a, b = app_cluster
    a.track("room:t", "on_a")
    b.track("room:t", "on_b")
    wait_for("both presences on A", lambda: a.presence("room:t") == ["on_a", "on_b"])
    b.signal(signal.SIGTERM)  # graceful permdown: no need to wait for the down period
    left = wait_for("on_b leaving A", lambda: a.presence("room:t") == ["on_a"])
    assert left < 2.0
    assert b.proc.wait(timeout=WAIT) == 0
