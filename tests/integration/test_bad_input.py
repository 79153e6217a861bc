"""Bad input from raw clients against the reference app (an OS process): each gets
Phoenix's documented answer (a reply, a close code, an HTTP status) and a log line,
other clients are unaffected and the server stays up (docs/protocol.md §1.3, §2, §3.1, §5.2).

The tests of this module share one app, in order; the last one checks that a
well-behaved client still works after all of it.
"""

from __future__ import annotations

import json
import os
import struct
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from testkit import UNIT
from testkit.processes import RunningApp, running_app
from testkit.raw_ws import closed_with, raw_websocket, read_exactly
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

TIMEOUT = 5 * UNIT
NDJSON = "application/x-ndjson"
INVALID_FRAME_LOG = "alight.channels.socket: closing socket"


# -- helpers ------------------------------------------------------------------------------


@contextmanager
def client(app: RunningApp, query: str = "vsn=2.0.0") -> Iterator[ClientConnection]:
    with connect(app.ws(query), open_timeout=TIMEOUT, close_timeout=TIMEOUT, ping_interval=None) as ws:
        yield ws


def send(ws: ClientConnection, *message: Any) -> None:
    ws.send(json.dumps(list(message)))


PRESENCE_EVENTS = ("presence_state", "presence_diff")


def recv(ws: ClientConnection) -> Any:
    """The next frame, skipping the reference app's presence events (issue 4)."""
    while True:
        frame = json.loads(ws.recv(TIMEOUT))
        if not (isinstance(frame, list) and len(frame) == 5 and frame[3] in PRESENCE_EVENTS):
            return frame


def join(ws: ClientConnection, topic: str, join_ref: str) -> Any:
    send(ws, join_ref, join_ref, topic, "phx_join", {})
    return recv(ws)


def longpoll(app: RunningApp, method: str, query: str, body: bytes | None = None) -> Any:
    """One long-poll request; asserts HTTP 200 (the real status is in the body)."""
    headers = {"content-type": NDJSON} if body is not None else {"accept": "application/json"}
    request = urllib.request.Request(app.http(f"/socket/longpoll?{query}"), data=body, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=TIMEOUT + 11) as response:  # a GET may wait its 10 s window
        assert response.status == 200
        assert response.headers["content-type"].startswith("application/json")
        return json.loads(response.read())


# -- WebSocket frames that cannot be decoded: close 1011 -----------------------------------

UNDECODABLE: dict[str, tuple[str, str | bytes, str]] = {
    "invalid-json": ("vsn=2.0.0", "[not json", "invalid JSON"),
    "short-array": ("vsn=2.0.0", json.dumps([None, "1", "room:x", "phx_join"]), "got 4"),
    "map-on-v2": ("vsn=2.0.0", json.dumps({"topic": "room:x", "event": "phx_join", "payload": {}, "ref": "1"}), ""),
    "array-on-v1": ("vsn=1.0.0", json.dumps([None, "1", "room:x", "phx_join", {}]), "JSON object"),
    "binary-on-v1": ("vsn=1.0.0", b"\x00\x01\x01\x06\x04" + b"11room:xping" + b"\x01", "binary frame"),
    "no-vsn-binary": ("", b"\x00\x00\x01\x06\x04" + b"1room:xping", "binary frame"),
}


@pytest.mark.parametrize("case", list(UNDECODABLE))
def test_undecodable_frame_closes_1011_and_is_logged(reference_app: RunningApp, case: str) -> None:
    query, frame, detail = UNDECODABLE[case]
    offset = len(reference_app.log())
    with client(reference_app, query) as ws:
        ws.send(frame)
        assert closed_with(ws)[0] == 1011
    line = reference_app.wait_for_log(INVALID_FRAME_LOG, after=offset)
    assert "invalid frame" in line
    assert detail in line


# -- answers on a live socket ----------------------------------------------------------------


def test_unknown_event_is_an_error_reply_and_the_socket_stays_up(reference_app: RunningApp) -> None:
    with client(reference_app) as ws:
        assert join(ws, "room:bad", "1") == [
            "1",
            "1",
            "room:bad",
            "phx_reply",
            {"status": "ok", "response": {"joined": "bad"}},
        ]
        send(ws, "1", "2", "room:bad", "no_such_event", {})
        unknown = {"status": "error", "response": {"reason": "unknown event no_such_event"}}
        assert recv(ws) == ["1", "2", "room:bad", "phx_reply", unknown]
        send(ws, "1", "3", "room:bad", "ping", {"still": "up"})
        assert recv(ws) == ["1", "3", "room:bad", "phx_reply", {"status": "ok", "response": {"still": "up"}}]


@pytest.mark.parametrize(
    ("topic", "event"),
    [("room:never_joined", "ping"), ("elsewhere:1", "phx_join"), ("phoenix", "not_heartbeat")],
)
def test_unjoined_or_unrouted_topic_is_unmatched_with_a_null_join_ref(
    reference_app: RunningApp, topic: str, event: str
) -> None:
    with client(reference_app) as ws:
        send(ws, "7", "8", topic, event, {})
        assert recv(ws) == [
            None,
            "8",
            topic,
            "phx_reply",
            {"status": "error", "response": {"reason": "unmatched topic"}},
        ]
        send(ws, None, "9", "phoenix", "heartbeat", {})
        assert recv(ws) == [None, "9", "phoenix", "phx_reply", {"status": "ok", "response": {}}]


def test_join_flood_is_refused_after_100_channels_and_others_are_unaffected(reference_app: RunningApp) -> None:
    with client(reference_app) as other, client(reference_app) as flood:
        assert join(other, "room:calm", "1")[4]["status"] == "ok"
        for n in range(150):
            send(flood, str(n), str(n), f"room:flood{n}", "phx_join", {})
        replies = [recv(flood) for _ in range(150)]
        by_topic = {reply[2]: reply for reply in replies}
        assert len(by_topic) == 150
        for n in range(150):
            join_ref, ref, _, event, payload = by_topic[f"room:flood{n}"]
            assert (join_ref, ref, event) == (str(n), str(n), "phx_reply")
            if n < 100:
                assert payload == {"status": "ok", "response": {"joined": f"flood{n}"}}
            else:
                assert payload == {"status": "error", "response": {"reason": "too many channels joined"}}
        # A joined channel of the flooding socket and the other client both still work.
        send(flood, "0", "x", "room:flood0", "ping", {})
        assert recv(flood)[4] == {"status": "ok", "response": {}}
        send(other, "1", "2", "room:calm", "ping", {"calm": True})
        assert recv(other) == ["1", "2", "room:calm", "phx_reply", {"status": "ok", "response": {"calm": True}}]


def test_unmatched_topic_is_logged(reference_app: RunningApp) -> None:
    offset = len(reference_app.log())
    with client(reference_app) as ws:
        send(ws, None, "1", "nowhere:1", "phx_join", {})
        assert recv(ws)[4]["response"] == {"reason": "unmatched topic"}
    assert "nowhere:1" in reference_app.wait_for_log("unmatched topic", timeout=UNIT, after=offset)


def test_channel_limit_is_logged(reference_app: RunningApp) -> None:
    offset = len(reference_app.log())
    with client(reference_app) as ws:
        for n in range(101):
            send(ws, str(n), str(n), f"room:limit{n}", "phx_join", {})
        assert [recv(ws)[4]["status"] for _ in range(101)].count("error") == 1
    reference_app.wait_for_log("too many channels", timeout=UNIT, after=offset)


# -- frame size: close 1009 -----------------------------------------------------------------


def test_frame_over_the_default_max_frame_size_closes_1009(reference_app: RunningApp) -> None:
    # Only the header of a 1 MiB + 1 frame is sent: the server must refuse it from the
    # declared length (the default max_frame_size is 1 MiB, as websockets').
    with raw_websocket(reference_app) as sock:
        sock.sendall(struct.pack("!BBQ", 0x81, 0x80 | 127, 1_048_577) + os.urandom(4))
        opcode, length = read_exactly(sock, 2)
        assert opcode == 0x88
        payload = read_exactly(sock, length & 0x7F)
        assert struct.unpack("!H", payload[:2])[0] == 1009
        assert sock.recv(1) == b""  # and the server closes TCP


def test_endpoint_max_frame_size_is_the_listeners(tmp_path: Path) -> None:
    with running_app("testkit.apps.small_frames:small_frames_app", tmp_path / "small.log") as app:
        with client(app) as ws:
            assert join(ws, "room:small", "1")[4]["status"] == "ok"
            send(ws, "1", "2", "room:small", "ping", {"fill": "x" * 900})
            assert recv(ws)[4] == {"status": "ok", "response": {"fill": "x" * 900}}
            send(ws, "1", "3", "room:small", "ping", {"fill": "x" * 1_000})
            assert closed_with(ws)[0] == 1009
        assert app.alive()
        # Long-poll: a POST with a frame over the limit is refused whole (413) and the
        # session goes on; the frames of the next POST are handled.
        token = longpoll(app, "GET", "vsn=2.0.0&user_id=1")["token"]
        query = f"vsn=2.0.0&user_id=1&token={quote(token)}"
        join_frame = json.dumps(["1", "1", "room:small", "phx_join", {}]).encode()
        big = json.dumps(["1", "2", "room:small", "ping", {"fill": "x" * 1_000}]).encode()
        assert longpoll(app, "POST", query, join_frame + b"\n" + big) == {"status": 413}
        assert longpoll(app, "POST", query, join_frame) == {"status": 200}
        polled = longpoll(app, "GET", query)
        assert polled["status"] == 200
        replies = [json.loads(message) for message in polled["messages"]]  # the first POST did nothing:
        assert [(r[1], r[3], r[4]["status"]) for r in replies] == [("1", "phx_reply", "ok")]
        assert app.alive()


# -- refused connections ----------------------------------------------------------------------


@pytest.mark.parametrize("vsn", ["3.0.0", "garbage"])
def test_unsupported_vsn_is_refused_with_403(reference_app: RunningApp, vsn: str) -> None:
    offset = len(reference_app.log())
    with pytest.raises(InvalidStatus) as refused:
        connect(reference_app.ws(f"vsn={vsn}"), open_timeout=TIMEOUT, ping_interval=None)
    assert refused.value.response.status_code == 403
    assert refused.value.response.body == b""
    assert longpoll(reference_app, "GET", f"vsn={vsn}") == {"status": 403}
    assert vsn in reference_app.wait_for_log("connection refused", after=offset)


def test_bad_connect_token_is_refused(reference_app: RunningApp) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(reference_app.ws("token=bad&vsn=2.0.0"), open_timeout=TIMEOUT, ping_interval=None)
    assert refused.value.response.status_code == 403
    assert longpoll(reference_app, "GET", "token=bad&vsn=2.0.0") == {"status": 403}


# -- long-poll session tokens ---------------------------------------------------------------

HEARTBEAT = json.dumps([None, "1", "phoenix", "heartbeat", {}]).encode()


@pytest.mark.parametrize("token", ["", "&token=garbage", "&token=SFMyNTY.bm90.YQ"])
def test_longpoll_post_without_a_valid_session_token_is_410(reference_app: RunningApp, token: str) -> None:
    assert longpoll(reference_app, "POST", f"vsn=2.0.0{token}", HEARTBEAT) == {"status": 410}


def test_longpoll_get_with_a_garbage_token_opens_a_new_session(reference_app: RunningApp) -> None:
    opened = longpoll(reference_app, "GET", "vsn=2.0.0&token=garbage")
    assert opened["status"] == 410
    assert opened["messages"] == []
    token = opened["token"]
    assert isinstance(token, str)
    assert token not in ("", "garbage")
    query = f"vsn=2.0.0&token={quote(token)}"
    assert longpoll(reference_app, "POST", query, HEARTBEAT) == {"status": 200}
    polled = longpoll(reference_app, "GET", query)
    assert (polled["status"], polled["token"]) == (200, token)
    assert [json.loads(message) for message in polled["messages"]] == [
        [None, "1", "phoenix", "phx_reply", {"status": "ok", "response": {}}]
    ]


def test_longpoll_undecodable_post_ends_the_session(reference_app: RunningApp) -> None:
    token = longpoll(reference_app, "GET", "vsn=2.0.0")["token"]
    query = f"vsn=2.0.0&token={quote(token)}"
    offset = len(reference_app.log())
    # Not acknowledged (the socket process ended): the client errors and reconnects.
    assert longpoll(reference_app, "POST", query, b"[not json") == {"status": 410}
    assert "invalid frame" in reference_app.wait_for_log(INVALID_FRAME_LOG, after=offset)
    assert longpoll(reference_app, "POST", query, HEARTBEAT) == {"status": 410}
    again = longpoll(reference_app, "GET", query)
    assert again["status"] == 410
    assert again["token"] != token


# -- and after all of that ------------------------------------------------------------------


def test_a_well_behaved_client_still_works_and_the_server_is_alive(reference_app: RunningApp) -> None:
    with client(reference_app, "user_id=fine&vsn=2.0.0") as ws:
        assert join(ws, "room:after", "1") == [
            "1",
            "1",
            "room:after",
            "phx_reply",
            {"status": "ok", "response": {"joined": "after"}},
        ]
        send(ws, "1", "2", "room:after", "user", {})
        assert recv(ws) == ["1", "2", "room:after", "phx_reply", {"status": "ok", "response": {"user_id": "fine"}}]
    assert reference_app.alive()
    with urllib.request.urlopen(reference_app.http("/health"), timeout=TIMEOUT) as response:
        assert response.read() == b"ok"
