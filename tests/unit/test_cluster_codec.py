"""The cluster frame codec: round trips, batch order, limits, and fuzzing (decoders
raise only ClusterFrameError, whatever the bytes)."""

from __future__ import annotations

import contextlib
import pickle
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alight.actors import Pid, Ref
from alight.cluster._codec import (
    MESSAGE_TYPES,
    VERSION,
    ClusterMessage,
    Demonitor,
    Down,
    Exit,
    Forward,
    Heartbeat,
    Hello,
    Link,
    Member,
    Monitor,
    PubSubForward,
    Send,
    Spawn,
    SpawnReply,
    Unlink,
    decode_batch,
    dump_function,
    encode_batch,
    load_function,
)
from alight.cluster.errors import BatchEncodeError, ClusterFrameError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND_TRIP = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.text(max_size=12)
pids = st.builds(Pid, names, st.integers(0, 2**40), st.integers(0, 2**40))
refs = st.builds(Ref, names, st.integers(0, 2**40), st.integers(0, 2**40))
dests = pids | names
data = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
members = st.builds(Member, names, st.integers(0, 2**40), names)
messages: st.SearchStrategy[ClusterMessage] = st.one_of(
    st.builds(Hello, names, st.integers(0, 2**40), names, st.lists(members, max_size=3).map(tuple)),
    st.builds(Heartbeat, st.integers(0, 2**40)),
    st.builds(Send, dests, data),
    st.builds(Link, pids, pids),
    st.builds(Unlink, pids, pids),
    st.builds(Exit, pids, pids, data),
    st.builds(Monitor, refs, pids, dests),
    st.builds(Demonitor, refs, pids, dests),
    st.builds(Down, refs, pids, dests, data),
    st.builds(Spawn, refs, pids, st.binary(max_size=30), st.lists(data, max_size=3).map(tuple), st.booleans()),
    st.builds(SpawnReply, refs, st.none() | pids, data),
    st.builds(PubSubForward, names, data, st.none() | pids),
    st.builds(Forward, names, data),
)


@ROUND_TRIP
@given(st.lists(messages, max_size=20))
def test_round_trip_keeps_every_message_in_order(batch: list[ClusterMessage]) -> None:
    assert decode_batch(encode_batch(batch)) == batch


def test_every_message_type_is_covered() -> None:
    assert len(MESSAGE_TYPES) == 13
    assert len(set(MESSAGE_TYPES)) == len(MESSAGE_TYPES)


def test_batching_keeps_order_and_types() -> None:
    pid = Pid("a@127.0.0.1", 7, 1)
    batch = [Send(pid, i) for i in range(1000)]
    decoded = decode_batch(encode_batch(batch))
    assert [m.message for m in decoded if isinstance(m, Send)] == list(range(1000))
    assert all(type(m) is Send and m.dest == pid for m in decoded)


def test_hello_members_come_back_as_members() -> None:
    hello = Hello("a", 1, "tcp://127.0.0.1:1", (Member("b", 2, "tcp://127.0.0.1:2"),))
    (decoded,) = decode_batch(encode_batch([hello]))
    assert isinstance(decoded, Hello)
    assert type(decoded.members[0]) is Member
    assert decoded == hello


def test_frame_starts_with_the_version_byte_and_pickles_no_message_class() -> None:
    frame = encode_batch([Heartbeat(3), Forward("tracker", {"k": 1})])
    assert frame[0] == VERSION
    assert b"Heartbeat" not in frame
    assert b"Forward" not in frame


def test_empty_batch() -> None:
    assert decode_batch(encode_batch([])) == []


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (b"", "empty"),
        (b"\x02" + pickle.dumps([]), "version 2"),
        (b"\x01" + pickle.dumps({"not": "a list"}), "not a list"),
        (b"\x01" + pickle.dumps([(99, ())]), "tag"),
        (b"\x01" + pickle.dumps([(2, (1,))]), "fields"),
        (b"\x01" + pickle.dumps([("2", (1, 2))]), "tag"),
        (b"\x01" + pickle.dumps([(-1, ())]), "tag"),
        (b"\x01" + pickle.dumps(["x"]), "malformed"),
        (b"\x01\x80", "unpickle"),
    ],
)
def test_bad_frames_raise_frame_error(frame: bytes, match: str) -> None:
    with pytest.raises(ClusterFrameError, match=match):
        decode_batch(frame)


def test_frame_size_is_bounded_both_ways() -> None:
    batch = [Send("echo", b"x" * 1000)]
    frame = encode_batch(batch)
    with pytest.raises(ClusterFrameError, match="exceeds"):
        decode_batch(frame, max_size=len(frame) - 1)
    assert decode_batch(frame, max_size=len(frame)) == batch
    with pytest.raises(BatchEncodeError, match="exceeds") as one:
        encode_batch(batch, max_size=100)
    assert one.value.index == 0
    with pytest.raises(BatchEncodeError, match="exceeds") as many:
        encode_batch(batch * 3, max_size=len(frame) + 10)
    assert many.value.index is None


def test_unpicklable_message_is_named_by_index() -> None:
    batch: list[Any] = [Send("a", 1), Send("b", lambda: None), Send("c", 3)]
    with pytest.raises(BatchEncodeError, match="cannot pickle") as info:
        encode_batch(batch)
    assert info.value.index == 1


def test_non_message_is_named_by_index() -> None:
    with pytest.raises(BatchEncodeError, match="not a cluster message") as info:
        encode_batch([Heartbeat(), ("send", 1)])  # type: ignore[list-item]
    assert info.value.index == 1


def test_functions_travel_with_cloudpickle() -> None:
    offset = 41

    def add(x: int) -> int:
        return x + offset

    spawn = Spawn(Ref("a", 1, 1), Pid("a", 1, 2), dump_function(add), (1,), link=True)
    (decoded,) = decode_batch(encode_batch([spawn]))
    assert isinstance(decoded, Spawn)
    assert load_function(decoded.function)(*decoded.args) == 42
    assert decoded.link
    assert not decoded.monitor


def test_function_errors() -> None:
    with pytest.raises(BatchEncodeError, match="not callable"):
        dump_function(42)  # type: ignore[arg-type]
    with pytest.raises(ClusterFrameError, match="cannot load"):
        load_function(b"\x80garbage")
    with pytest.raises(ClusterFrameError, match="not callable"):
        load_function(pickle.dumps(42))


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_frame_error(frame: bytes) -> None:
    with contextlib.suppress(ClusterFrameError):
        decode_batch(frame)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_after_the_version_byte_raise_only_frame_error(body: bytes) -> None:
    with contextlib.suppress(ClusterFrameError):
        decode_batch(bytes([VERSION]) + body)


@FUZZ
@given(st.lists(messages, min_size=1, max_size=5), st.data())
def test_mutated_frames_raise_only_frame_error(batch: list[ClusterMessage], draw: st.DataObject) -> None:
    frame = bytearray(encode_batch(batch))
    position = draw.draw(st.integers(1, len(frame) - 1))
    if draw.draw(st.booleans()):
        frame[position] = draw.draw(st.integers(0, 255))
    else:
        del frame[position:]
    try:
        decoded = decode_batch(bytes(frame))
    except ClusterFrameError:
        return
    assert all(type(m) in MESSAGE_TYPES for m in decoded)
