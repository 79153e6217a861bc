"""Property and fuzz tests of the serializers: decoders only ever raise InvalidMessage,
what phoenix.js sends decodes to the same fields, and output has the §2.3 shapes."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alight.channels.errors import EncodeError, InvalidMessage
from alight.channels.message import Broadcast, Message, Reply
from alight.channels.serializer import V1, V2, Serializer
from alight.transports.errors import InvalidLongPollBody
from alight.transports.longpoll import NDJSON, decode_longpoll_body

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND_TRIP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SERIALIZERS = st.sampled_from([V1, V2])

# JSON values as JavaScript's JSON.parse would produce them (safe integers, finite floats).
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
refs = st.none() | st.integers(min_value=0, max_value=10**6).map(str)
short_text = st.text(max_size=40)
# Fields that fit a binary frame (at most 255 UTF-8 bytes).
binary_fields = st.text(max_size=60)


def decode_only_raises_invalid_message(serializer: Serializer, data: bytes, binary: bool) -> None:
    try:
        message = serializer.decode(data, binary)
    except InvalidMessage:
        return
    assert isinstance(message, Message)
    assert isinstance(message.topic, str)
    assert isinstance(message.event, str)


@FUZZ
@given(serializer=SERIALIZERS, data=st.binary(max_size=200), binary=st.booleans())
def test_arbitrary_bytes(serializer: Serializer, data: bytes, binary: bool) -> None:
    decode_only_raises_invalid_message(serializer, data, binary)


@FUZZ
@given(serializer=SERIALIZERS, data=st.text(max_size=200))
def test_arbitrary_text(serializer: Serializer, data: str) -> None:
    decode_only_raises_invalid_message(serializer, data.encode("utf-8", "surrogatepass"), False)


@FUZZ
@given(serializer=SERIALIZERS, value=json_values)
def test_arbitrary_json_values(serializer: Serializer, value: Any) -> None:
    decode_only_raises_invalid_message(serializer, json.dumps(value).encode(), False)


@FUZZ
@given(
    serializer=SERIALIZERS,
    value=st.lists(json_values, max_size=7)
    | st.dictionaries(st.sampled_from(["topic", "event", "payload", "ref", "join_ref", "x"]), json_values),
)
def test_near_miss_shapes(serializer: Serializer, value: Any) -> None:
    decode_only_raises_invalid_message(serializer, json.dumps(value).encode(), False)


@FUZZ
@given(
    kind=st.integers(0, 3),
    sizes=st.lists(st.integers(0, 255), min_size=4, max_size=4),
    rest=st.binary(max_size=80),
)
def test_binary_headers(kind: int, sizes: list[int], rest: bytes) -> None:
    decode_only_raises_invalid_message(V2, bytes([kind, *sizes]) + rest, True)


@FUZZ
@given(body=st.binary(max_size=300), ndjson=st.booleans())
def test_longpoll_bodies(body: bytes, ndjson: bool) -> None:
    try:
        frames = decode_longpoll_body(body, NDJSON if ndjson else "text/plain")
    except InvalidLongPollBody:
        return
    for frame in frames:
        decode_only_raises_invalid_message(V2, frame.data, frame.binary)


# -- a client-side encoder, as phoenix.js 1.8.16 writes frames -------------------------


def js_encode(join_ref: str | None, ref: str | None, topic: str, event: str, payload: Any) -> tuple[bytes, bool]:
    """``Serializer.encode``: binary for an ArrayBuffer payload, else a JSON array."""
    if isinstance(payload, bytes):
        fields = [
            b"null" if join_ref is None else join_ref.encode(),
            b"null" if ref is None else ref.encode(),
            topic.encode(),
            event.encode(),
        ]
        header = bytes([0, *(len(f) for f in fields)])
        return header + b"".join(fields) + payload, True
    return json.dumps([join_ref, ref, topic, event, payload]).encode(), False


@ROUND_TRIP
@given(join_ref=refs, ref=refs, topic=short_text, event=short_text, payload=json_values)
def test_v2_round_trip_json(join_ref: str | None, ref: str | None, topic: str, event: str, payload: Any) -> None:
    data, binary = js_encode(join_ref, ref, topic, event, payload)
    assert V2.decode(data, binary) == Message(topic, event, payload, ref, join_ref)


@ROUND_TRIP
@given(
    join_ref=st.integers(0, 10**6).map(str),
    ref=st.integers(0, 10**6).map(str),
    topic=binary_fields,
    event=binary_fields,
    payload=st.binary(max_size=100),
)
def test_v2_round_trip_binary(join_ref: str, ref: str, topic: str, event: str, payload: bytes) -> None:
    data, binary = js_encode(join_ref, ref, topic, event, payload)
    assert binary is True
    assert V2.decode(data, binary) == Message(topic, event, payload, ref, join_ref)


@ROUND_TRIP
@given(join_ref=refs, ref=refs, topic=short_text, event=short_text, payload=json_values)
def test_v2_round_trip_through_longpoll(
    join_ref: str | None, ref: str | None, topic: str, event: str, payload: Any
) -> None:
    data, _ = js_encode(join_ref, ref, topic, event, payload)
    blob, _ = js_encode(join_ref, ref, topic, event, b"\x00\x01")
    body = data + b"\n" + base64.b64encode(blob)
    text_frame, binary_frame = decode_longpoll_body(body, NDJSON)
    assert V2.decode(text_frame.data, text_frame.binary) == Message(topic, event, payload, ref, join_ref)
    assert V2.decode(binary_frame.data, binary_frame.binary).payload == b"\x00\x01"


@ROUND_TRIP
@given(join_ref=refs, ref=refs, topic=short_text, event=short_text, payload=json_values)
def test_v1_round_trip(join_ref: str | None, ref: str | None, topic: str, event: str, payload: Any) -> None:
    data = json.dumps({"topic": topic, "event": event, "payload": payload, "ref": ref, "join_ref": join_ref})
    assert V1.decode(data.encode()) == Message(topic, event, payload, ref, join_ref)


# -- encode -> json.loads gives the §2.3 shapes ----------------------------------------


@ROUND_TRIP
@given(join_ref=refs, ref=refs, topic=short_text, status=short_text, response=json_values)
def test_reply_shapes(join_ref: str | None, ref: str | None, topic: str, status: str, response: Any) -> None:
    reply = Reply(topic, status, response, ref, join_ref)
    expected = {"status": status, "response": response}
    assert json.loads(V2.encode_reply(reply).data) == [join_ref, ref, topic, "phx_reply", expected]
    assert json.loads(V1.encode_reply(reply).data) == {
        "topic": topic,
        "event": "phx_reply",
        "payload": expected,
        "ref": ref,
    }


@ROUND_TRIP
@given(join_ref=refs, topic=short_text, event=short_text, payload=json_objects)
def test_push_and_broadcast_shapes(join_ref: str | None, topic: str, event: str, payload: dict[str, Any]) -> None:
    push = Message(topic, event, payload, None, join_ref)
    assert json.loads(V2.encode_push(push).data) == [join_ref, None, topic, event, payload]
    assert json.loads(V1.encode_push(push).data) == {"topic": topic, "event": event, "payload": payload, "ref": None}
    broadcast = Broadcast(topic, event, payload)
    assert json.loads(V2.fastlane(broadcast).data) == [None, None, topic, event, payload]
    assert json.loads(V1.fastlane(broadcast).data) == {"topic": topic, "event": event, "payload": payload, "ref": None}


def js_decode_binary(data: bytes) -> dict[str, Any]:
    """phoenix.js ``binaryDecode``: kind 0 push, 1 reply, 2 broadcast."""
    kind = data[0]
    if kind == 0:
        sizes, pos, names = data[1:4], 4, ["join_ref", "topic", "event"]
    elif kind == 1:
        sizes, pos, names = data[1:5], 5, ["join_ref", "ref", "topic", "status"]
    else:
        sizes, pos, names = data[1:3], 3, ["topic", "event"]
    out: dict[str, Any] = {"kind": kind}
    for name, size in zip(names, sizes, strict=True):
        out[name] = data[pos : pos + size].decode()
        pos += size
    out["payload"] = data[pos:]
    return out


@ROUND_TRIP
@given(
    join_ref=st.integers(0, 10**6).map(str),
    ref=st.integers(0, 10**6).map(str),
    topic=binary_fields,
    event=binary_fields,
    payload=st.binary(max_size=100),
)
def test_binary_output_decodes_in_the_client(join_ref: str, ref: str, topic: str, event: str, payload: bytes) -> None:
    try:
        push = V2.encode_push(Message(topic, event, payload, None, join_ref))
        reply = V2.encode_reply(Reply(topic, event, payload, ref, join_ref))
        broadcast = V2.fastlane(Broadcast(topic, event, payload))
    except EncodeError:
        # Only when a field is over 255 bytes or not encodable text.
        assert any(len(f.encode("utf-8", "surrogatepass")) > 255 for f in (topic, event)) or any(
            "\ud800" <= c <= "\udfff" for c in topic + event
        )
        return
    assert js_decode_binary(push.data) == {
        "kind": 0,
        "join_ref": join_ref,
        "topic": topic,
        "event": event,
        "payload": payload,
    }
    assert js_decode_binary(reply.data) == {
        "kind": 1,
        "join_ref": join_ref,
        "ref": ref,
        "topic": topic,
        "status": event,
        "payload": payload,
    }
    assert js_decode_binary(broadcast.data) == {"kind": 2, "topic": topic, "event": event, "payload": payload}


@FUZZ
@given(
    payload=st.recursive(
        scalars | st.binary(max_size=4) | st.integers(),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.integers() | st.text(max_size=3), c, max_size=3),
        max_leaves=8,
    )
)
def test_encoding_anything_raises_only_encode_error(payload: Any) -> None:
    for serializer in (V1, V2):
        for message in (Message("t", "e", payload), Broadcast("t", "e", payload), Reply("t", "ok", payload, "1")):
            try:
                frame = serializer.encode(message)
            except EncodeError:
                continue
            if not frame.binary:
                json.loads(frame.data)
