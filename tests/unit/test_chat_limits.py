"""The chat demo's limits and its per-room history store: pure values, an injected clock."""

from __future__ import annotations

import pytest

from alight.demo.chat import ChatLimits, LimitExceeded, RateLimit
from alight.demo.chat._history import RoomHistory
from alight.demo.chat._limits import check_device, check_message, check_name, check_room

LIMITS = ChatLimits(max_name=5, max_room=6, max_device=8, max_message=10)


def test_names_are_trimmed_and_bounded() -> None:
    assert check_name(LIMITS, "  ann ") == "ann"
    assert check_name(LIMITS, "éèà") == "éèà"
    for bad, reason in [
        (None, "a name is required"),
        ("   ", "a name is required"),
        (42, "a name is required"),
        ("abcdef", "names are at most 5 characters"),
        ("a\tb", "control characters"),
        ("a\u200bb", "control characters"),
    ]:
        with pytest.raises(LimitExceeded, match=reason):
            check_name(LIMITS, bad)


def test_devices_rooms_and_messages_are_bounded() -> None:
    assert check_device(LIMITS, "ab-c_9") == "ab-c_9"
    for bad in ["", "a b", "x" * 9, None, "é"]:
        with pytest.raises(LimitExceeded, match="device"):
            check_device(LIMITS, bad)
    assert check_room(LIMITS, "room:dev-1") == "dev-1"
    for bad in ["room:", "room:Dev", "room:-x", "room:abcdefg", "room:a b"]:
        with pytest.raises(LimitExceeded, match="room names are 1-6"):
            check_room(LIMITS, bad)
    assert check_message(LIMITS, {"body": "  hi  "}) == "hi"
    cases: list[tuple[object, str]] = [
        ({"body": " "}, "empty"),
        ({"body": "x" * 11}, "at most 10 characters"),
        ({}, "new_msg takes"),
        ([], "new_msg takes"),
        ({"body": 3}, "new_msg takes"),
    ]
    for payload, reason in cases:
        with pytest.raises(LimitExceeded, match=reason):
            check_message(LIMITS, payload)


def test_limits_reject_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="burst must be at least 1"):
        ChatLimits(burst=0)
    with pytest.raises(ValueError, match="per_second must be > 0"):
        ChatLimits(per_second=0)
    with pytest.raises(ValueError, match="join_burst must be at least 1"):
        ChatLimits(join_burst=0)
    with pytest.raises(ValueError, match="joins_per_second must be > 0"):
        ChatLimits(joins_per_second=-1)


def test_rate_limit_allows_a_burst_then_the_rate() -> None:
    bucket = RateLimit(burst=3, per_second=2.0)
    assert [bucket.allow(10.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after() == pytest.approx(0.5)
    assert not bucket.allow(10.4)  # 0.8 of a token
    assert bucket.allow(10.5)
    assert not bucket.allow(10.5)
    # A long pause refills up to the burst, no more.
    assert [bucket.allow(100.0) for _ in range(4)] == [True, True, True, False]


def test_room_history_keeps_the_last_messages_of_the_recent_rooms() -> None:
    store = RoomHistory(history=2, rooms=2)
    assert store.open("room:a") is None
    for n in range(3):
        store.add("room:a", {"n": n})
    store.add("room:closed", {"n": 9})  # not open: ignored
    assert store.get("room:a") == [{"n": 1}, {"n": 2}]
    assert store.get("room:closed") == []
    assert store.open("room:b") is None
    assert store.open("room:a") is None  # now the most recently used
    assert store.open("room:c") == "room:b"
    assert "room:b" not in store
    assert store.get("room:a") == [{"n": 1}, {"n": 2}]
