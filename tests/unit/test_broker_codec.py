"""The broker's data-only codec and seal (`alight.cluster._data_codec`), as values.

Properties (Hypothesis): plain data, pids, refs and records round-trip exactly (tuples stay
tuples, sets stay sets); every presence state and delta of a random tracker history
round-trips with the same content and merges the same; any byte string either decodes or
raises `BrokerFrameError`, nothing else; a sealed frame opens only with its key, on its
channel, unaltered.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alight.actors import Pid, Ref
from alight.channels.message import Broadcast, Encoded
from alight.channels.presence._state import Delta, State
from alight.channels.presence.lowlevel import GracefulPermdown, Heartbeat, Replica, TransferAck, TransferReq
from alight.cluster._data_codec import MAGIC, DataCodec, open_frame, origin_of, seal
from alight.cluster.errors import BrokerFrameError, UnencodableMessage

from .test_presence_state_properties import content, histories, play

codec = DataCodec()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
pids = st.builds(Pid, st.text(max_size=10), st.integers(0, 2**62), st.integers(0, 2**40))
refs = st.builds(Ref, st.text(max_size=10), st.integers(0, 2**62), st.integers(0, 2**40))
hashables = st.recursive(
    st.one_of(scalars, pids, refs),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=4,
)
values = st.recursive(
    st.one_of(scalars, pids, refs),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(hashables, inner, max_size=4),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4),
        st.builds(Broadcast, st.text(max_size=10), st.text(max_size=10), inner),
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(values)
def test_data_round_trips_exactly(value: Any) -> None:
    decoded = codec.decode(codec.encode(value))
    assert decoded == value
    assert _shape(decoded) == _shape(value)  # a tuple stays a tuple, a set a set


def _shape(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return (type(value).__name__, [_shape(v) for v in value])
    if isinstance(value, dict):
        return ("dict", sorted(repr((_shape(k), _shape(v))) for k, v in value.items()))
    if isinstance(value, set | frozenset):
        return (type(value).__name__, sorted(repr(_shape(v)) for v in value))
    return type(value).__name__


@settings(max_examples=150, deadline=None)
@given(histories)
def test_presence_states_and_deltas_round_trip_and_merge_the_same(history: list[tuple[Any, ...]]) -> None:
    cluster = play(history)
    for state in cluster.states:
        decoded = codec.decode(codec.encode(state))
        assert isinstance(decoded, State)
        assert content(decoded) == content(state)
        assert dict(decoded.replicas) == dict(state.replicas)
        other = cluster.states[0].extract(state.replica, state.clocks())
        assert content(codec.decode(codec.encode(other))) == content(other)
    for delta in cluster.network:
        decoded = codec.decode(codec.encode(delta))
        assert isinstance(decoded, Delta)
        assert (decoded.start, decoded.end, decoded.clouds) == (delta.start, delta.end, delta.clouds)
        target_a, target_b = cluster.states[1].copy(), cluster.states[1].copy()
        assert _changes(target_a.merge(delta)) == _changes(target_b.merge(decoded))
        assert content(target_a) == content(target_b)


def _changes(changes: tuple[list[Any], list[Any]]) -> tuple[list[str], list[str]]:
    return sorted(map(repr, changes[0])), sorted(map(repr, changes[1]))


def test_replica_messages_round_trip() -> None:
    state = State(Replica("a@h", 7))
    state.join(Pid("a@h", 7, 1), "room:1", "alice", {"device": "phone"})
    delta = state.take_delta()
    for message in (
        Heartbeat("s0", Replica("a@h", 7), delta, {Replica("a@h", 7): 1}),
        Heartbeat("s0", Replica("a@h", 7), None, {}),
        TransferReq("s0", 3, Replica("b@h", 2), {Replica("a@h", 7): 1}),
        TransferAck("s0", 3, Replica("a@h", 7), state),
        GracefulPermdown("s0", Replica("a@h", 7)),
    ):
        decoded = codec.decode(codec.encode(message))
        assert type(decoded) is type(message)
        assert decoded.shard == message.shard


def test_encoded_payloads_cross_as_their_json() -> None:
    decoded = codec.decode(codec.encode(Broadcast("t", "e", Encoded({"big": [1, 2, 3]}))))
    assert isinstance(decoded.payload, Encoded)
    assert decoded.payload.data == b'{"big":[1,2,3]}'


@dataclass(frozen=True)
class Mine:
    x: int
    y: str


def test_records_cross_only_when_registered() -> None:
    with pytest.raises(UnencodableMessage, match=r"test_broker_codec\.Mine cannot cross"):
        codec.encode(("event", Mine(1, "a")))
    with pytest.raises(UnencodableMessage, match="object cannot cross"):
        codec.encode({"k": object()})
    mine = DataCodec([Mine])
    frame = mine.encode(Mine(1, "a"))
    assert mine.decode(frame) == Mine(1, "a")
    # A node that did not register it refuses the record: nothing is built by name.
    with pytest.raises(BrokerFrameError, match="unknown record"):
        codec.decode(frame)
    with pytest.raises(TypeError):
        mine.register(int)


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_broker_frame_error(data: bytes) -> None:
    with contextlib.suppress(BrokerFrameError):  # anything else fails the test
        codec.decode(data)


@settings(max_examples=1000, deadline=None)
@given(values, st.integers(0, 10_000), st.integers(0, 7))
def test_mutated_encodings_decode_or_raise_broker_frame_error(value: Any, where: int, bit: int) -> None:
    data = bytearray(codec.encode(value))
    data[where % len(data)] ^= 1 << bit
    with contextlib.suppress(BrokerFrameError):  # anything else fails the test
        codec.decode(bytes(data))


def test_deep_nesting_is_refused_not_a_crash() -> None:
    with pytest.raises(BrokerFrameError):
        codec.decode(b"\x91" * 100_000 + b"\xc0")  # 100,000 nested one-element arrays
    inner = b"\x91\xc0"
    for _ in range(5_000):  # tuples inside tuples, each an extension decoded by the hook
        inner = b"\x91" + b"\xc9" + len(inner).to_bytes(4, "big") + b"\x01" + inner
    with pytest.raises(BrokerFrameError):
        codec.decode(inner)
    with pytest.raises(BrokerFrameError, match="not a sequence"):
        codec.decode(b"\xd4\x01\xc0")  # a tuple whose content is not an array


KEY = b"k" * 32
CHANNEL = b"alight:app.pubsub"
ORIGIN = b"\x01" * 8


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=100), st.integers(0, 10_000), st.integers(0, 7))
def test_a_sealed_frame_opens_only_unaltered_with_its_key_and_channel(body: bytes, where: int, bit: int) -> None:
    frame = seal(KEY, CHANNEL, ORIGIN, body)
    assert open_frame(KEY, CHANNEL, frame, 1 << 20) == body
    assert origin_of(frame) == ORIGIN
    altered = bytearray(frame)
    altered[where % len(frame)] ^= 1 << bit
    for key, channel, candidate in (
        (KEY, CHANNEL, bytes(altered)),
        (b"x" * 32, CHANNEL, frame),
        (KEY, CHANNEL + b":other", frame),
    ):
        with pytest.raises(BrokerFrameError):
            open_frame(key, channel, candidate, 1 << 20)


def test_frames_over_the_bound_or_not_ours_are_refused_before_checking() -> None:
    with pytest.raises(BrokerFrameError, match="over the bound"):
        open_frame(KEY, CHANNEL, seal(KEY, CHANNEL, ORIGIN, b"x" * 100), 50)
    with pytest.raises(BrokerFrameError, match="bad magic"):
        open_frame(KEY, CHANNEL, b"GET / HTTP/1.1\r\n" * 4, 1 << 20)
    with pytest.raises(BrokerFrameError, match="bad signature"):
        open_frame(KEY, CHANNEL, MAGIC + ORIGIN + bytes(32) + b"\x90", 1 << 20)
    with pytest.raises(BrokerFrameError, match="bytes, not str"):
        open_frame(KEY, CHANNEL, "text", 1 << 20)  # type: ignore[arg-type]
