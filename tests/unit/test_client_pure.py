"""The pure parts of `alight.client`: backoff with jitter, the V2 client frame codec,
and presence `sync_state` / `sync_diff` with phoenix.js's semantics (docs/protocol.md §6.4)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

import pytest

from alight.client import (
    RECONNECT_STEPS,
    REJOIN_STEPS,
    Message,
    Presence,
    backoff,
    list_presences,
    sync_diff,
    sync_state,
)
from alight.client._frames import decode, decode_v1, encode, encode_v1
from alight.client.errors import ClientEncodeError

# -- backoff ---------------------------------------------------------------------------


def test_backoff_follows_phoenix_steps_then_repeats_the_last() -> None:
    assert [backoff(n, rand=lambda: 0.5) for n in range(1, 12)] == [*RECONNECT_STEPS, 5.0]
    assert [backoff(n, REJOIN_STEPS, rand=lambda: 0.5) for n in range(1, 6)] == [1.0, 2.0, 5.0, 10.0, 10.0]


@pytest.mark.parametrize("tries", range(1, 13))
def test_backoff_jitter_bounds(tries: int) -> None:
    step = RECONNECT_STEPS[min(tries, len(RECONNECT_STEPS)) - 1]
    assert backoff(tries, rand=lambda: 0.0) == pytest.approx(step * 0.5)
    assert backoff(tries, rand=lambda: 0.999999) == pytest.approx(step * 1.5, rel=1e-5)
    delays = {backoff(tries) for _ in range(200)}
    assert all(step * 0.5 <= d <= step * 1.5 for d in delays)
    assert len(delays) > 100  # randomized, not a fixed tick


def test_backoff_without_jitter_and_bad_arguments() -> None:
    assert backoff(3, jitter=0) == 0.1
    with pytest.raises(ValueError, match="tries"):
        backoff(0)
    with pytest.raises(ValueError, match="jitter"):
        backoff(1, jitter=1.5)


# -- frames ----------------------------------------------------------------------------


def test_encode_json_frame() -> None:
    assert encode("1", "2", "room:a", "ping", {"n": 1}) == '["1","2","room:a","ping",{"n":1}]'
    assert encode(None, "3", "phoenix", "heartbeat", {}) == '[null,"3","phoenix","heartbeat",{}]'


def test_encode_binary_push_matches_the_protocol_example() -> None:
    # docs/protocol.md §2.4 worked example.
    frame = encode("17", "18", "room:b", "binary", b"\x01\x02\x03")
    assert frame == b"\x00\x02\x02\x06\x06" + b"17" + b"18" + b"room:b" + b"binary" + b"\x01\x02\x03"


def test_encode_errors() -> None:
    with pytest.raises(ClientEncodeError, match="255"):
        encode("1", "2", "t" * 256, "e", b"")
    with pytest.raises(ClientEncodeError, match="JSON"):
        encode("1", "2", "t", "e", {"x": object()})


def test_decode_json_and_binary_frames() -> None:
    assert decode('["1","2","room:a","phx_reply",{"status":"ok","response":{}}]') == Message(
        "room:a", "phx_reply", {"status": "ok", "response": {}}, "2", "1"
    )
    assert decode('[null,null,"room:a","shout",{}]') == Message("room:a", "shout", {})
    assert decode('[1,2,"t","e",{}]').ref == "2"  # refs are opaque: integers become text
    reply = b"\x01\x02\x02\x06\x02" + b"17" + b"18" + b"room:b" + b"ok" + b"\x01\x02\x03"
    assert decode(reply) == Message("room:b", "phx_reply", {"status": "ok", "response": b"\x01\x02\x03"}, "18", "17")
    push = b"\x00\x02\x06\x04" + b"17" + b"room:b" + b"data" + b"\xff"
    assert decode(push) == Message("room:b", "data", b"\xff", None, "17")
    broadcast = b"\x02\x06\x04" + b"room:b" + b"data" + b"\x00"
    assert decode(broadcast) == Message("room:b", "data", b"\x00")


@pytest.mark.parametrize("bad", ["{}", "[1,2,3]", '[null,null,1,"e",{}]', b"", b"\x07", b"\x02\x09\x01ab"])
def test_decode_rejects_malformed_frames(bad: str | bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (each case has its own message)
        decode(bad)


def test_v1_frames_are_json_objects() -> None:
    frame = encode_v1("1", "2", "room:a", "ping", {"n": 1})
    assert json.loads(frame) == {"topic": "room:a", "event": "ping", "payload": {"n": 1}, "ref": "2", "join_ref": "1"}
    # The server never sends join_ref in V1 (docs/protocol.md §2.2).
    message = decode_v1('{"topic":"room:a","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"2"}')
    assert message == Message("room:a", "phx_reply", {"status": "ok", "response": {}}, "2", None)
    with pytest.raises(ClientEncodeError, match="binary"):
        encode_v1(None, None, "room:a", "bin", b"\x00")


@pytest.mark.parametrize(
    "bad", ["[]", '["1","2","t","e",{}]', '{"topic":"t","event":"e"}', '{"topic":1,"event":"e","payload":{}}', b"\x00"]
)
def test_decode_v1_rejects_malformed_frames(bad: str | bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        decode_v1(bad)


# -- presence --------------------------------------------------------------------------


def meta(ref: str, **extra: Any) -> dict[str, Any]:
    return {"phx_ref": ref, **extra}


def test_sync_state_joins_and_leaves_with_callbacks() -> None:
    joined: list[tuple[str, Any, Any]] = []
    left: list[tuple[str, Any, Any]] = []
    current = {"u1": {"metas": [meta("1", id=1)]}, "u2": {"metas": [meta("2", id=2)]}}
    new = {"u1": {"metas": [meta("1", id=1), meta("1b", id=3)]}, "u3": {"metas": [meta("3", id=4)]}}
    state = sync_state(
        current, new, lambda k, c, n: joined.append((k, c, n)), lambda k, c, lft: left.append((k, c, lft))
    )
    assert state == {"u1": {"metas": [meta("1", id=1), meta("1b", id=3)]}, "u3": {"metas": [meta("3", id=4)]}}
    assert [(k, n) for k, _, n in joined] == [
        ("u1", {"metas": [meta("1b", id=3)]}),
        ("u3", {"metas": [meta("3", id=4)]}),
    ]
    assert joined[0][1] == {"metas": [meta("1", id=1)]}
    assert [(k, lft) for k, _, lft in left] == [("u2", {"metas": [meta("2", id=2)]})]
    assert current == {"u1": {"metas": [meta("1", id=1)]}, "u2": {"metas": [meta("2", id=2)]}}  # not mutated


def test_sync_state_removes_a_meta_whose_ref_is_gone() -> None:
    current = {"u1": {"metas": [meta("1"), meta("2")]}}
    assert sync_state(current, {"u1": {"metas": [meta("2")]}}) == {"u1": {"metas": [meta("2")]}}


def test_sync_diff_join_prepends_existing_metas_and_keeps_extra_keys() -> None:
    current = {"u1": {"metas": [meta("1", device="a")]}}
    diff = {"joins": {"u1": {"metas": [meta("2", device="b")], "user": {"name": "x"}}}, "leaves": {}}
    assert sync_diff(current, diff) == {
        "u1": {"metas": [meta("1", device="a"), meta("2", device="b")], "user": {"name": "x"}}
    }


def test_sync_diff_update_is_a_join_and_a_leave_of_the_same_key() -> None:
    current = {"u1": {"metas": [meta("old", status="away")]}}
    diff = {
        "joins": {"u1": {"metas": [meta("new", status="here", phx_ref_prev="old")]}},
        "leaves": {"u1": {"metas": [meta("old", status="away")]}},
    }
    assert sync_diff(current, diff) == {"u1": {"metas": [meta("new", status="here", phx_ref_prev="old")]}}


def test_sync_diff_leave_deletes_an_empty_key_and_ignores_unknown_keys() -> None:
    left: list[str] = []
    current = {"u1": {"metas": [meta("1")]}, "u2": {"metas": [meta("2"), meta("3")]}}
    diff = {"joins": {}, "leaves": {"u1": {"metas": [meta("1")]}, "u2": {"metas": [meta("2")]}, "zz": {"metas": []}}}
    state = sync_diff(current, diff, on_leave=lambda k, c, lft: left.append(k))
    assert state == {"u2": {"metas": [meta("3")]}}
    assert left == ["u1", "u2"]


def test_list_presences_with_and_without_chooser() -> None:
    state = {"a": {"metas": [meta("1")]}, "b": {"metas": [meta("2"), meta("3")]}}
    assert list_presences(state) == [{"metas": [meta("1")]}, {"metas": [meta("2"), meta("3")]}]
    assert list_presences(state, lambda key, p: (key, len(p["metas"]))) == [("a", 1), ("b", 2)]


class _FakeChannel:
    """Just what `Presence` uses of a channel: ``on`` and ``join_ref``."""

    def __init__(self) -> None:
        self.join_ref: str | None = "1"
        self.handlers: dict[str, Callable[[Message], object]] = {}

    def on(self, event: str, callback: Callable[[Message], object]) -> int:
        self.handlers[event] = callback
        return 1

    def send(self, event: str, payload: Any) -> None:
        self.handlers[event](Message("room:x", event, payload, None, None))


def test_presence_queues_diffs_until_the_state_of_the_current_join() -> None:
    channel = _FakeChannel()
    presence = Presence(cast(Any, channel))
    syncs: list[list[str]] = []
    presence.on_sync(lambda: syncs.append(sorted(presence.state)))
    channel.send("presence_diff", {"joins": {"b": {"metas": [meta("2")]}}, "leaves": {}})
    assert presence.in_pending_sync_state()
    assert presence.state == {}
    channel.send("presence_state", {"a": {"metas": [meta("1")]}})
    assert syncs == [["a", "b"]]
    channel.send("presence_diff", {"joins": {}, "leaves": {"a": {"metas": [meta("1")]}}})
    assert presence.list(lambda key, p: key) == ["b"]
    channel.join_ref = "9"  # a rejoin: diffs wait for the next state again
    assert presence.in_pending_sync_state()
    channel.send("presence_diff", {"joins": {"c": {"metas": [meta("3")]}}, "leaves": {}})
    assert sorted(presence.state) == ["b"]
    channel.send("presence_state", {"c": {"metas": [meta("3")]}})
    assert presence.state == {"c": {"metas": [meta("3")]}}
