"""The socket's decisions (docs/protocol.md §3.1, Phoenix 1.8.12), as plain values."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from alight.channels import Channel, Socket
from alight.channels._multiplexer import (
    Drop,
    Forward,
    Join,
    Joined,
    Multiplexer,
    ReplyHeartbeat,
    ReplyLeaveNotJoined,
    ReplyTooMany,
    ReplyUnmatched,
)
from alight.channels.message import Message


class RoomChannel(Channel):
    pass


class LobbyChannel(Channel):
    pass


def route(topic: str) -> Any:
    """``room:*`` routes to RoomChannel, ``lobby`` exactly to LobbyChannel."""
    if topic.startswith("room:"):
        return RoomChannel
    return LobbyChannel if topic == "lobby" else None


def mux(*joined: tuple[str, Any], max_channels: int = 100) -> Multiplexer:
    m = Multiplexer(max_channels, route)
    for i, (topic, join_ref) in enumerate(joined):
        m.add(Joined(topic, pid=f"pid{i}", join_ref=join_ref, monitor=f"mon{i}"))
    return m


def msg(topic: str, event: str, join_ref: Any = None, ref: Any = "9") -> Message:
    return Message(topic, event, {}, ref, join_ref)


# -- heartbeat and the phoenix topic -------------------------------------------------


def test_heartbeat_needs_no_join() -> None:
    assert mux().decide(msg("phoenix", "heartbeat")) == ReplyHeartbeat()


def test_heartbeat_with_a_join_ref_is_still_a_heartbeat() -> None:
    assert mux().decide(msg("phoenix", "heartbeat", join_ref="3")) == ReplyHeartbeat()


def test_any_other_event_on_phoenix_is_an_unmatched_topic() -> None:
    assert mux().decide(msg("phoenix", "ping")) == ReplyUnmatched()
    assert mux().decide(msg("phoenix", "phx_join", join_ref="1")) == ReplyUnmatched()


def test_heartbeat_on_a_joined_topic_goes_to_the_channel() -> None:
    m = mux(("room:1", "1"))
    assert m.decide(msg("room:1", "heartbeat", "1")) == Forward(m.by_topic["room:1"])


# -- joins ------------------------------------------------------------------------------


def test_join_without_a_route_is_unmatched() -> None:
    assert mux().decide(msg("nope:1", "phx_join", "1")) == ReplyUnmatched()


def test_join_with_a_route_starts_that_channel() -> None:
    assert mux().decide(msg("room:1", "phx_join", "1")) == Join(RoomChannel)
    assert mux().decide(msg("lobby", "phx_join", "1")) == Join(LobbyChannel)


def test_the_101st_channel_is_refused() -> None:
    m = mux(*[(f"room:{i}", str(i)) for i in range(100)])
    assert len(m) == 100
    assert m.decide(msg("room:new", "phx_join", "x")) == ReplyTooMany()
    # Below the limit the join goes ahead.
    m.remove(m.by_topic["room:0"])
    assert m.decide(msg("room:new", "phx_join", "x")) == Join(RoomChannel)


def test_the_limit_is_configurable() -> None:
    m = mux(("room:1", "1"), max_channels=1)
    assert m.decide(msg("room:2", "phx_join", "2")) == ReplyTooMany()


def test_the_limit_is_checked_after_the_route() -> None:
    # Phoenix answers "unmatched topic" before counting channels.
    m = mux(*[(f"room:{i}", str(i)) for i in range(100)])
    assert m.decide(msg("nope", "phx_join", "x")) == ReplyUnmatched()


def test_duplicate_join_replaces_the_live_channel() -> None:
    m = mux(("room:1", "1"))
    old = m.by_topic["room:1"]
    assert m.decide(msg("room:1", "phx_join", "5")) == Join(RoomChannel, replace=old)


def test_duplicate_join_at_the_limit_is_not_refused() -> None:
    # The old incarnation goes away first, so the new one takes its place.
    m = mux(*[(f"room:{i}", str(i)) for i in range(100)])
    old = m.by_topic["room:7"]
    assert m.decide(msg("room:7", "phx_join", "new")) == Join(RoomChannel, replace=old)


def test_routes_are_only_consulted_for_joins() -> None:
    calls: list[str] = []

    def counting(topic: str) -> Any:
        calls.append(topic)
        return route(topic)

    m = Multiplexer(100, counting)
    m.add(Joined("room:1", "pid", "1", "mon"))
    m.decide(msg("room:1", "ping", "1"))
    m.decide(msg("other", "ping"))
    m.decide(msg("phoenix", "heartbeat"))
    assert calls == []
    m.decide(msg("room:2", "phx_join", "2"))
    assert calls == ["room:2"]


# -- leave ------------------------------------------------------------------------------


def test_leave_with_the_current_join_ref_goes_to_the_channel() -> None:
    m = mux(("room:1", "1"))
    assert m.decide(msg("room:1", "phx_leave", "1")) == Forward(m.by_topic["room:1"])


def test_leave_with_a_null_join_ref_goes_to_the_channel() -> None:
    # 1.8.12 accepts a null join_ref on leave (phoenix#6800).
    m = mux(("room:1", "1"))
    assert m.decide(msg("room:1", "phx_leave", None)) == Forward(m.by_topic["room:1"])


def test_leave_for_an_older_join_is_ignored() -> None:
    m = mux(("room:1", "2"))
    decision = m.decide(msg("room:1", "phx_leave", "1"))
    assert type(decision) is Drop


def test_leave_of_a_topic_not_joined_is_answered_ok() -> None:
    assert mux().decide(msg("room:1", "phx_leave", "1")) == ReplyLeaveNotJoined()


# -- other events ---------------------------------------------------------------------


def test_event_with_the_current_join_ref_is_forwarded() -> None:
    m = mux(("room:1", "1"), ("room:2", "2"))
    assert m.decide(msg("room:2", "ping", "2")) == Forward(m.by_topic["room:2"])


def test_event_with_a_null_join_ref_is_forwarded() -> None:
    m = mux(("room:1", "1"))
    assert m.decide(msg("room:1", "ping", None)) == Forward(m.by_topic["room:1"])


def test_event_with_a_stale_join_ref_is_dropped() -> None:
    # 1.8.12: no reply at all; the client's push times out.
    m = mux(("room:1", "2"))
    assert type(m.decide(msg("room:1", "ping", "1"))) is Drop


def test_channel_joined_without_a_join_ref_drops_messages_that_carry_one() -> None:
    # The 1.8.12 edge: stored nil != given value, so the message is stale.
    m = mux(("room:1", None))
    assert type(m.decide(msg("room:1", "ping", "1"))) is Drop
    assert type(m.decide(msg("room:1", "phx_leave", "1"))) is Drop
    assert m.decide(msg("room:1", "ping", None)) == Forward(m.by_topic["room:1"])


def test_event_on_a_topic_not_joined_is_unmatched() -> None:
    assert mux().decide(msg("room:1", "ping", "1")) == ReplyUnmatched()
    assert mux().decide(msg("room:1", "ping", None)) == ReplyUnmatched()


def test_join_ref_comparison_is_by_value() -> None:
    # Refs are opaque JSON values: a numeric join_ref matches the same number.
    m = mux(("room:1", 4))
    assert m.decide(msg("room:1", "ping", 4)) == Forward(m.by_topic["room:1"])
    assert type(m.decide(msg("room:1", "ping", "4"))) is Drop


# -- bookkeeping ----------------------------------------------------------------------


def test_remove_forgets_topic_and_monitor() -> None:
    m = mux(("room:1", "1"))
    joined = m.by_topic["room:1"]
    assert m.by_monitor["mon0"] is joined
    m.remove(joined)
    assert len(m) == 0
    assert m.by_monitor == {}
    assert m.decide(msg("room:1", "ping", "1")) == ReplyUnmatched()


def test_removing_a_replaced_incarnation_keeps_the_new_one() -> None:
    m = mux(("room:1", "1"))
    old = m.by_topic["room:1"]
    new = Joined("room:1", "pid-new", "2", "mon-new")
    m.add(new)
    m.remove(old)
    assert m.by_topic["room:1"] is new
    assert m.by_monitor == {"mon-new": new}


# -- Socket.route ---------------------------------------------------------------------


class UserSocket(Socket):
    channels: ClassVar[dict[str, type[Channel]]] = {
        "room:lobby": LobbyChannel,
        "room:*": RoomChannel,
        "exact": LobbyChannel,
    }


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("room:lobby", LobbyChannel),  # the first match wins
        ("room:42", RoomChannel),
        ("room:", RoomChannel),  # Phoenix: "room:" <> _rest matches an empty rest
        ("room:a:b", RoomChannel),
        ("room", None),
        ("rooms:1", None),
        ("exact", LobbyChannel),
        ("exact:1", None),
        ("exactly", None),
        ("", None),
    ],
)
def test_route_matching(topic: str, expected: type[Channel] | None) -> None:
    assert UserSocket.route(topic) is expected


def test_catch_all_route() -> None:
    class AnySocket(Socket):
        channels: ClassVar[dict[str, type[Channel]]] = {"*": RoomChannel}

    assert AnySocket.route("anything:at:all") is RoomChannel
    assert AnySocket.route("") is RoomChannel


def test_socket_without_routes_matches_nothing() -> None:
    assert Socket.route("room:1") is None
