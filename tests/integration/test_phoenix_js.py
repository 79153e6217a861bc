"""The official phoenix client (npm ``phoenix@1.8.16`` under Node, ``ws`` for
WebSocket) against the reference app, over WebSocket (vsn 2.0.0 and 1.0.0) and
long-poll: every event of the app, refusal, endpoint broadcasts, the ``disconnect``
broadcast and heartbeats; served by alight's native server and, as an ASGI app,
by uvicorn.

``tests/js/conformance.js`` drives the client and prints what it saw; each test
here checks one observation of one run. Each run is made once per module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from testkit import UNIT
from testkit.processes import NodeRun, RunningApp, alight_run, run_node, running_app, uvicorn_run

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

RUNS = {
    "websocket": ("websocket", "2.0.0"),
    "longpoll": ("longpoll", "2.0.0"),
    "websocket-v1": ("websocket", "1.0.0"),
}


SERVERS = {
    "native": ("examples.reference:app", alight_run),
    "asgi": ("examples.reference:asgi_app", uvicorn_run),
}


@pytest.fixture(scope="module", params=list(SERVERS))
def served_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """The reference app on alight's native server, then as an ASGI app under uvicorn."""
    spec, command = SERVERS[request.param]
    with running_app(spec, tmp_path_factory.mktemp(request.param) / "app.log", command) as app:
        yield app


@pytest.fixture(scope="module", params=list(RUNS))
def client(request: pytest.FixtureRequest, served_app: RunningApp) -> NodeRun:
    """One run of the conformance script; ``client.transport`` names it."""
    transport, vsn = RUNS[request.param]
    run = run_node("conformance.js", served_app.host, transport, vsn, timeout=40 * UNIT)
    assert run.returncode == 0, run.transcript()
    run.by_check["_run"] = {"transport": transport, "vsn": vsn}
    return run


def transport_of(client: NodeRun) -> str:
    transport: str = client.by_check["_run"]["transport"]
    return transport


def ok(response: Any) -> dict[str, Any]:
    return {"status": "ok", "response": response}


def test_every_step_finished(client: NodeRun) -> None:
    errors = [line for line in client.lines if "error" in line]
    assert not errors, client.transcript()
    assert "done" in client.by_check, client.transcript()


def test_join_replies_with_the_room_name(client: NodeRun) -> None:
    seen = client["join"]
    assert (seen["status"], seen["response"]) == ("ok", {"joined": "lobby"})
    assert seen["other"] == ok({"joined": "lobby"})


def test_forbidden_join_is_an_error(client: NodeRun) -> None:
    seen = client["forbidden"]
    assert (seen["status"], seen["response"]) == ("error", {"reason": "unauthorized"})


def test_ping_replies_with_the_payload(client: NodeRun) -> None:
    seen = client["ping"]
    assert (seen["status"], seen["response"]) == ("ok", {"n": 1, "text": "héllo"})


def test_shout_reaches_the_sender_and_the_other_socket(client: NodeRun) -> None:
    seen = client["shout"]
    assert seen["sender"] == [{"msg": "hi all"}]
    assert seen["other"] == [{"msg": "hi all"}]


def test_error_reply(client: NodeRun) -> None:
    seen = client["error_reply"]
    assert (seen["status"], seen["response"]) == ("error", {"reason": "nope"})


def test_push_arrives_before_the_reply(client: NodeRun) -> None:
    assert client["push_me"]["order"] == [
        {"what": "pushed", "payload": {"x": 1}},
        {"what": "reply", "status": "ok", "response": {}},
    ]


def test_async_reply_comes_later_and_the_channel_stays_responsive(client: NodeRun) -> None:
    order = client["async"]["order"]
    assert [step["what"] for step in order] == ["ping", "async"]
    ping, late = order
    assert (ping["status"], ping["response"]) == ("ok", {"b": 2})
    assert (late["status"], late["response"]) == ("ok", {"a": 1})
    assert late["ms"] >= 45  # the app replies ~50 ms later (timer granularity aside)
    assert late["ms"] < 2_000 * UNIT


def test_user_comes_from_the_connect_params(client: NodeRun) -> None:
    seen = client["user"]
    assert (seen["status"], seen["response"]) == ("ok", {"user_id": "u1"})


def test_binary_payload_is_echoed_as_an_arraybuffer(client: NodeRun) -> None:
    if client.by_check["_run"] != {"transport": "websocket", "vsn": "2.0.0"}:
        pytest.skip("binary frames exist on WebSocket with vsn 2.0.0 only (docs/protocol.md §2.4)")
    seen = client["binary"]
    assert seen == {**seen, "status": "ok", "arraybuffer": True, "bytes": [0, 1, 2, 127, 128, 255]}


def test_v1_frames_are_maps_without_join_ref(client: NodeRun) -> None:
    if client.by_check["_run"]["vsn"] != "1.0.0":
        pytest.skip("vsn 1.0.0 only")
    seen = client["v1_frame"]
    assert seen["array"] is False
    assert seen["keys"] == ["event", "payload", "ref", "topic"]


def test_heartbeat_is_answered(client: NodeRun) -> None:
    seen = client["heartbeat"]
    assert seen["pushed"] is True
    assert 0 <= seen["rtt"] < 2_000 * UNIT


def test_api_broadcast_reaches_joined_clients(client: NodeRun) -> None:
    seen = client["api_broadcast"]
    assert seen["http"] == {"status": 200, "body": {"ok": True}}
    assert seen["a"] == [{"headline": "hello"}]
    assert seen["b"] == [{"headline": "hello"}]


def test_stop_replies_then_closes_without_rejoin(client: NodeRun) -> None:
    seen = client["stop"]
    assert seen["order"] == [{"what": "reply", "status": "ok", "response": {}}, {"what": "close"}]
    assert seen["state"] == "closed"
    assert seen["still_on_socket"] is False
    # Observed after the >= 1 s of the crash step: still the one join.
    assert client["stop_no_rejoin"]["joins"] == 1


def test_crash_errors_the_channel_and_the_client_rejoins(client: NodeRun) -> None:
    seen = client["crash"]
    assert seen["errors"] == 1
    assert seen["joins"] == [ok({"joined": "crashy"}), ok({"joined": "crashy"})]
    # The client's rejoin backoff starts at 1 s after phx_error (docs/protocol.md §3.4).
    assert seen["rejoin_ms"] >= 900
    assert seen["ping_after"] == ok({"again": True})


def test_a_token_user_param_does_not_hide_the_session_token(client: NodeRun) -> None:
    seen = client["param_token"]
    assert seen["join"] == ok({"joined": "tokens"})
    assert seen["user"] == ok({"user_id": "u4"})
    assert seen["ping"] == ok({"n": 2})
    assert seen["opens"] == 1


def test_bad_token_is_refused_and_the_client_keeps_retrying(client: NodeRun) -> None:
    seen = client["refused"]
    assert seen["opens"] == 0
    assert len(seen["errors"]) >= 2
    if transport_of(client) == "websocket":
        assert all("403" in str(error) for error in seen["errors"]), seen
    else:
        assert seen["errors"][:2] == [403, 403]
        assert len(seen["bodies"]) >= 2
        assert all(body == {"http": 200, "body": '{"status":403}'} for body in seen["bodies"]), seen


def test_disconnect_broadcast_closes_the_socket_and_the_client_comes_back(client: NodeRun) -> None:
    seen = client["disconnect"]
    assert seen["http"] == {"status": 200, "body": {"ok": True}}
    # WebSocket: 1001 as Phoenix >= 1.8.8. Long-poll: the session is gone, which the
    # client learns from its next GET (a new session's 410) and reports as 3410.
    expected = 1001 if transport_of(client) == "websocket" else 3410
    assert seen["close_codes"][:1] == [expected]
    assert seen["rejoin"] == ok({"joined": "lobby"})
    assert seen["ping_after"] == ok({"after": "disconnect"})
    assert seen["b_closes"] == 0  # another user's socket is not touched


def test_other_users_socket_is_unaffected(client: NodeRun) -> None:
    seen = client["other_unaffected"]
    assert seen["ping"] == ok({"still": "here"})
    assert seen["closes"] == 0
