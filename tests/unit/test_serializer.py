"""The V1/V2 serializers against the exact frames of docs/protocol.md §2 and §3."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from alight.channels.errors import EncodeError, InvalidMessage, MessageRefused, UnsupportedVsn
from alight.channels.message import Broadcast, Frame, Message, Reply
from alight.channels.serializer import (
    MAX_DEPTH,
    MAX_NAME,
    V1,
    V2,
    Serializer,
    V1Serializer,
    V2Serializer,
    negotiate,
)
from alight.transports.errors import InvalidLongPollBody
from alight.transports.longpoll import LONGPOLL_MAX_BATCH, NDJSON, decode_longpoll_body, longpoll_messages


def text(frame: Frame) -> Any:
    assert frame.binary is False
    return json.loads(frame.data)


# -- V2 output shapes (§2.3) ----------------------------------------------------------


def test_v2_reply_to_a_push_uses_the_channels_join_ref() -> None:
    frame = V2.encode_reply(Reply("room:v", "ok", {"joined": "v"}, ref="2", join_ref="1"))
    assert text(frame) == ["1", "2", "room:v", "phx_reply", {"status": "ok", "response": {"joined": "v"}}]


def test_v2_reply_to_heartbeat() -> None:
    frame = V2.encode_reply(Reply("phoenix", "ok", {}, ref="5"))
    assert frame.data == b'[null,"5","phoenix","phx_reply",{"status":"ok","response":{}}]'


def test_v2_unmatched_topic_has_a_null_join_ref() -> None:
    frame = V2.encode_reply(Reply("room:x", "error", {"reason": "unmatched topic"}, ref="3"))
    assert text(frame) == [
        None,
        "3",
        "room:x",
        "phx_reply",
        {"status": "error", "response": {"reason": "unmatched topic"}},
    ]


def test_v2_push_has_a_null_ref() -> None:
    frame = V2.encode_push(Message("room:v", "pushed", {"a": 1}, join_ref="1"))
    assert frame.data == b'["1",null,"room:v","pushed",{"a":1}]'


def test_v2_broadcast_has_null_refs() -> None:
    frame = V2.fastlane(Broadcast("room:v", "shout", {"body": "hi"}))
    assert frame.data == b'[null,null,"room:v","shout",{"body":"hi"}]'


@pytest.mark.parametrize(
    ("event", "payload"), [("phx_close", {}), ("phx_error", {}), ("phx_error", {"reason": "channel_crash"})]
)
def test_v2_close_and_error_carry_the_join_ref_as_ref(event: str, payload: dict[str, Any]) -> None:
    frame = V2.encode_push(Message("room:v", event, payload, ref="7", join_ref="7"))
    assert text(frame) == ["7", "7", "room:v", event, payload]


@pytest.mark.parametrize("ref", ["1", 1, 1.5, None, True, [1, 2], {"a": 1}])
def test_refs_are_echoed_with_their_json_type(ref: Any) -> None:
    frame = V2.encode_reply(Reply("t", "ok", {}, ref=ref, join_ref=ref))
    decoded = text(frame)
    assert decoded[0] == ref
    assert type(decoded[1]) is type(ref)
    assert text(V1.encode_reply(Reply("t", "ok", {}, ref=ref)))["ref"] == ref


@pytest.mark.parametrize("response", [{}, {"a": [1, 2]}, [1, "x"], "text", 3, 2.5, None, True])
def test_a_reply_response_may_be_any_json_value(response: Any) -> None:
    assert text(V2.encode_reply(Reply("t", "ok", response, "1", "1")))[4] == {"status": "ok", "response": response}
    assert text(V1.encode_reply(Reply("t", "ok", response, "1")))["payload"] == {"status": "ok", "response": response}


@pytest.mark.parametrize("payload", [[1], "x", 1, None, True, (1, 2)])
@pytest.mark.parametrize("serializer", [V1, V2])
def test_push_and_broadcast_payloads_must_be_dicts(serializer: Serializer, payload: Any) -> None:
    with pytest.raises(EncodeError, match="must be a dict or bytes"):
        serializer.encode_push(Message("t", "e", payload))
    with pytest.raises(EncodeError, match="must be a dict or bytes"):
        serializer.fastlane(Broadcast("t", "e", payload))


def test_encode_dispatches_by_type() -> None:
    assert V2.encode(Reply("t", "ok", {}, "1", "1")) == V2.encode_reply(Reply("t", "ok", {}, "1", "1"))
    assert V2.encode(Broadcast("t", "e", {})) == V2.fastlane(Broadcast("t", "e", {}))
    assert V2.encode(Message("t", "e", {}, None, "1")) == V2.encode_push(Message("t", "e", {}, None, "1"))


# -- V1 output (§2.2) -----------------------------------------------------------------


def test_v1_reply_exactly_as_phoenix() -> None:
    frame = V1.encode_reply(Reply("room:v", "ok", {"joined": "v"}, ref="1", join_ref="1"))
    assert frame.data == (
        b'{"topic":"room:v","event":"phx_reply","payload":{"status":"ok","response":{"joined":"v"}},"ref":"1"}'
    )


def test_v1_push_and_broadcast() -> None:
    assert V1.encode_push(Message("room:v", "pushed", {}, join_ref="1")).data == (
        b'{"topic":"room:v","event":"pushed","payload":{},"ref":null}'
    )
    assert text(V1.fastlane(Broadcast("room:v", "shout", {"a": 1}))) == {
        "topic": "room:v",
        "event": "shout",
        "payload": {"a": 1},
        "ref": None,
    }


def test_v1_error_and_close_carry_ref_but_never_join_ref() -> None:
    frame = V1.encode_push(Message("room:v", "phx_error", {"reason": "channel_crash"}, ref="4", join_ref="4"))
    assert text(frame) == {"topic": "room:v", "event": "phx_error", "payload": {"reason": "channel_crash"}, "ref": "4"}


@pytest.mark.parametrize(
    "frame",
    [
        V1.encode_reply(Reply("t", "ok", {}, "1", "9")),
        V1.encode_push(Message("t", "e", {}, None, "9")),
        V1.encode_push(Message("t", "phx_close", {}, "9", "9")),
        V1.fastlane(Broadcast("t", "e", {})),
    ],
)
def test_v1_output_never_has_join_ref(frame: Frame) -> None:
    assert set(text(frame)) == {"topic", "event", "payload", "ref"}


@pytest.mark.parametrize(
    "encode",
    [
        lambda: V1.encode_push(Message("t", "e", b"x")),
        lambda: V1.fastlane(Broadcast("t", "e", b"x")),
        lambda: V1.encode_reply(Reply("t", "ok", b"x", "1")),
    ],
)
def test_v1_cannot_encode_binary(encode: Any) -> None:
    with pytest.raises(EncodeError, match=r"need vsn=2\.0\.0"):
        encode()


# -- binary frames (§2.4) -------------------------------------------------------------

WORKED_PUSH = bytes([0, 2, 2, 6, 6]) + b"17" + b"18" + b"room:b" + b"binary" + bytes([1, 2, 3])
WORKED_REPLY = bytes([1, 2, 2, 6, 2]) + b"17" + b"18" + b"room:b" + b"ok" + bytes([1, 2, 3])


def test_decode_the_worked_example_client_push() -> None:
    assert V2.decode(WORKED_PUSH, binary=True) == Message("room:b", "binary", b"\x01\x02\x03", "18", "17")


def test_encode_the_worked_example_reply() -> None:
    frame = V2.encode_reply(Reply("room:b", "ok", b"\x01\x02\x03", ref="18", join_ref="17"))
    assert frame.binary is True
    assert frame.data == WORKED_REPLY


def test_server_push_has_three_size_bytes_and_no_ref() -> None:
    frame = V2.encode_push(Message("room:b", "pushed", b"\xff\x00", ref=None, join_ref="17"))
    assert frame.binary is True
    assert frame.data == bytes([0, 2, 6, 6]) + b"17room:bpushed\xff\x00"


def test_binary_broadcast() -> None:
    frame = V2.fastlane(Broadcast("room:b", "shout", bytearray(b"\x00\x01")))
    assert frame.binary is True
    assert frame.data == bytes([2, 6, 5]) + b"room:bshout\x00\x01"


def test_binary_refs_are_written_as_text() -> None:
    assert V2.encode_reply(Reply("t", "ok", b"", ref=18, join_ref=None)).data == bytes([1, 0, 2, 1, 2]) + b"18tok"
    assert V2.encode_reply(Reply("t", "ok", b"", ref=True, join_ref=1.5)).data[5:] == b"1.5truetok"
    with pytest.raises(EncodeError, match="cannot be written in a binary frame"):
        V2.encode_reply(Reply("t", "ok", b"", ref=["x"]))


def test_binary_fields_over_255_bytes_cannot_be_encoded() -> None:
    V2.fastlane(Broadcast("t" * 255, "e", b""))
    with pytest.raises(EncodeError, match="topic is 256 bytes"):
        V2.fastlane(Broadcast("t" * 256, "e", b""))
    with pytest.raises(EncodeError, match="event is 256 bytes"):
        V2.encode_push(Message("t", "é" * 128, b""))
    with pytest.raises(EncodeError, match="status"):
        V2.encode_reply(Reply("t", "s" * 300, b"", "1"))


def test_binary_fields_must_be_valid_text() -> None:
    with pytest.raises(EncodeError, match="not valid UTF-8"):
        V2.fastlane(Broadcast("\ud800", "e", b""))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "shorter than its 5-byte header"),
        (b"\x00\x01\x01", "shorter than its 5-byte header"),
        (bytes([1, 0, 0, 1, 1]) + b"te", "kind 1"),
        (bytes([2, 0, 0, 1, 1]) + b"te", "kind 2"),
        (bytes([0, 2, 2, 6, 6]) + b"1718room:bbinar", "truncated"),
        (bytes([0, 255, 0, 0, 0]), "truncated"),
        (bytes([0, 0, 0, 1, 1]) + b"\xffe", "topic is not valid UTF-8"),
        (bytes([0, 1, 0, 1, 1]) + b"\xc3te", "join_ref is not valid UTF-8"),
    ],
)
def test_bad_binary_frames(data: bytes, why: str) -> None:
    with pytest.raises(InvalidMessage, match=why):
        V2.decode(data, binary=True)


def test_binary_frame_with_empty_refs_keeps_empty_strings_like_phoenix() -> None:
    message = V2.decode(bytes([0, 0, 0, 1, 1]) + b"te", binary=True)
    assert message == Message("t", "e", b"", "", "")


def test_a_binary_frame_on_v1_is_invalid() -> None:
    with pytest.raises(InvalidMessage, match=r"binary frame on a 1\.0\.0 socket"):
        V1.decode(WORKED_PUSH, binary=True)


# -- decoding text frames -------------------------------------------------------------


def test_v2_decode_keeps_every_field() -> None:
    data = b'["1","2","room:v","phx_join",{"device":"d"}]'
    assert V2.decode(data) == Message("room:v", "phx_join", {"device": "d"}, "2", "1")


def test_v2_decode_ignores_extra_elements_and_accepts_any_payload() -> None:
    assert V2.decode(b'[null,3,"t","e",[1],"extra",7]') == Message("t", "e", [1], 3, None)


def test_v1_decode() -> None:
    assert V1.decode(b'{"topic":"t","event":"e","payload":{},"ref":"1","join_ref":"2","x":1}') == Message(
        "t", "e", {}, "1", "2"
    )
    assert V1.decode(b'{"topic":"t","event":"e","payload":null,"ref":null}') == Message("t", "e", None)


@pytest.mark.parametrize(
    ("serializer", "data", "why"),
    [
        (V2, b"", "invalid JSON"),
        (V2, b"[1,2", "invalid JSON"),
        (V2, b'["\xff"]', "invalid JSON or UTF-8"),
        (V2, b"[NaN,1,2,3,4]", "invalid JSON"),
        (V2, b"{}", "expected a JSON array"),
        (V2, b'"x"', "expected a JSON array"),
        (V2, b'[null,"1","t","e"]', "got 4"),
        (V2, b'[null,"1",1,"e",{}]', "topic must be a string"),
        (V2, b'[null,"1","t",null,{}]', "event must be a string"),
        (V1, b'["1","1","t","e",{}]', "expected a JSON object"),
        (V1, b'{"topic":"t","event":"e","payload":{}}', "missing key 'ref'"),
        (V1, b'{"event":"e","payload":{},"ref":null}', "missing key 'topic'"),
        (V1, b'{"topic":"t","event":[],"payload":{},"ref":null}', "event must be a string"),
    ],
)
def test_invalid_text_frames(serializer: Serializer, data: bytes, why: str) -> None:
    with pytest.raises(InvalidMessage, match=why):
        serializer.decode(data)


# -- JSON edge cases: a clear EncodeError, never anything else -------------------------


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ({1: "a"}, "Dict key must be str"),
        ({"n": 2**64}, "64-bit"),
        ({"b": b"x"}, "not JSON serializable"),
        ({"s": "\ud800"}, "surrogates"),
        ({"o": object()}, "not JSON serializable"),
    ],
)
@pytest.mark.parametrize("serializer", [V1, V2])
def test_unencodable_payloads_raise_encode_error(serializer: Serializer, payload: dict[Any, Any], why: str) -> None:
    with pytest.raises(EncodeError, match=why):
        serializer.fastlane(Broadcast("t", "e", payload))
    with pytest.raises(EncodeError, match=why):
        serializer.encode_reply(Reply("t", "ok", payload, "1"))


def test_a_cycle_raises_encode_error() -> None:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    with pytest.raises(EncodeError):
        V2.encode_push(Message("t", "e", cycle))


def test_nan_and_infinity_encode_as_null_like_json_stringify() -> None:
    frame = V2.fastlane(Broadcast("t", "e", {"a": float("nan"), "b": float("inf")}))
    assert text(frame)[4] == {"a": None, "b": None}


def test_huge_integers_decode_as_floats() -> None:
    message = V2.decode(b'[null,null,"t","e",{"n":' + b"9" * 30 + b"}]")
    assert message.payload == {"n": 1e30}


# -- negotiation (§1.3) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("vsn", "expected"),
    [
        (None, V1),
        ("1.0.0", V1),
        ("1.0.5", V1),
        ("1.0.1-rc.1", V1),
        ("1.0.0+build.7", V1),
        ("2.0.0", V2),
        ("2.0.9", V2),
    ],
)
def test_negotiate(vsn: str | None, expected: Serializer) -> None:
    assert negotiate(vsn) is expected


@pytest.mark.parametrize(
    "vsn", ["3.0.0", "1.1.0", "2.1.0", "0.9.0", "1.0.0-rc", "garbage", "", "2.0", "2", "01.0.0", " 2.0.0", "1" * 5000]
)
def test_negotiate_refuses(vsn: str) -> None:
    with pytest.raises(UnsupportedVsn) as info:
        negotiate(vsn)
    assert info.value.vsn == vsn


def test_negotiate_with_custom_requirements() -> None:
    assert negotiate("2.5.1", [(V2, "~> 2.0")]) is V2
    with pytest.raises(UnsupportedVsn):
        negotiate("3.0.0", [(V2, "~> 2.0")])
    with pytest.raises(ValueError, match="unsupported serializer requirement"):
        negotiate("2.0.0", [(V2, ">= 2.0.0")])


def test_serializer_attributes() -> None:
    assert (V1.vsn, V1.supports_binary, V2.vsn, V2.supports_binary) == ("1.0.0", False, "2.0.0", True)
    assert isinstance(V1, V1Serializer)
    assert isinstance(V2, V2Serializer)
    assert repr(V2) == "<V2Serializer vsn=2.0.0>"


# -- long-poll bodies (§5.2) ----------------------------------------------------------


def test_longpoll_messages_are_the_frames_as_strings() -> None:
    frames = [
        V2.encode_reply(Reply("room:lp", "ok", {}, "1", "1")),
        V2.fastlane(Broadcast("room:lp", "shout", {"é": "ü"})),
    ]
    messages = longpoll_messages(frames)
    assert messages == [
        '["1","1","room:lp","phx_reply",{"status":"ok","response":{}}]',
        '[null,null,"room:lp","shout",{"é":"ü"}]',
    ]
    assert json.loads(json.dumps({"status": 200, "messages": messages}))["messages"] == messages


def test_longpoll_messages_refuse_binary_frames() -> None:
    with pytest.raises(ValueError, match="long-poll"):
        longpoll_messages([V2.fastlane(Broadcast("t", "e", b"x"))])


def test_decode_ndjson_body_with_text_and_base64_binary_lines() -> None:
    line1 = b'["1","1","room:lp","phx_join",{}]'
    body = line1 + b"\r\n" + base64.b64encode(WORKED_PUSH) + b"\n" + b'["1","2","room:lp","ping",{}]'
    frames = decode_longpoll_body(body, NDJSON)
    assert frames == [Frame(line1), Frame(WORKED_PUSH, binary=True), Frame(b'["1","2","room:lp","ping",{}]')]
    assert V2.decode(frames[1].data, frames[1].binary).payload == b"\x01\x02\x03"


def test_ndjson_body_keeps_only_the_first_100_lines() -> None:
    body = b"\n".join(b'[null,"%d","t","e",{}]' % n for n in range(150))
    frames = decode_longpoll_body(body, NDJSON)
    assert len(frames) == LONGPOLL_MAX_BATCH
    assert V2.decode(frames[-1].data).ref == "99"


def test_other_content_types_are_one_text_frame() -> None:
    body = b'["1","1","t","e",{}]\n["1","2","t","e",{}]'
    assert decode_longpoll_body(body, "text/plain") == [Frame(body)]
    assert decode_longpoll_body(body, None) == [Frame(body)]
    assert decode_longpoll_body(body, "application/x-ndjson; charset=utf-8") == [Frame(body)]


def test_ndjson_line_that_is_not_base64_is_invalid() -> None:
    with pytest.raises(InvalidLongPollBody, match="line 2"):
        decode_longpoll_body(b'["1","1","t","e",{}]\n{"topic":"t"}', NDJSON)


def test_empty_ndjson_line_is_an_empty_binary_frame_that_does_not_decode() -> None:
    (frame,) = decode_longpoll_body(b"", NDJSON)
    assert frame == Frame(b"", binary=True)
    with pytest.raises(InvalidMessage):
        V2.decode(frame.data, frame.binary)


# -- limits on what a client sends (the serializer module's docstring) ----------------


def nested(depth: int) -> str:
    """A JSON value nested ``depth`` levels (``[[1]]`` is 2)."""
    return "[" * depth + "1" + "]" * depth


def v2_frame(payload: str, event: str = "e", topic: str = "room:t", ref: str = '"2"') -> bytes:
    return f'["1",{ref},"{topic}","{event}",{{"d":{payload}}}]'.encode()


@pytest.mark.parametrize("serializer", [V1, V2])
def test_a_payload_at_the_depth_limit_decodes_and_its_reply_encodes(serializer: Serializer) -> None:
    payload = {"d": json.loads(nested(MAX_DEPTH - 1))}  # MAX_DEPTH levels in all
    if serializer is V2:
        data = json.dumps(["1", "2", "room:t", "e", payload]).encode()
    else:
        data = json.dumps({"topic": "room:t", "event": "e", "payload": payload, "ref": "2"}).encode()
    message = serializer.decode(data)
    assert message.payload == payload
    # The reply that echoes it wraps it in three more levels: orjson encodes them.
    assert text(serializer.encode_reply(Reply("room:t", "ok", {"echo": message.payload}, "2", "1")))


@pytest.mark.parametrize("depth", [MAX_DEPTH, 254, 1_000])
def test_a_payload_deeper_than_the_limit_is_refused_with_its_refs(depth: int) -> None:
    with pytest.raises(MessageRefused) as info:
        V2.decode(v2_frame(nested(depth)))
    refused = info.value
    assert (refused.reason, refused.topic, refused.ref, refused.join_ref) == ("payload too deep", "room:t", "2", "1")


def test_many_brackets_that_do_not_nest_are_not_too_deep() -> None:
    wide = "[" + ",".join(["[1]"] * 1_000) + "]"
    assert len(V2.decode(v2_frame(wide)).payload["d"]) == 1_000
    assert len(V2.decode(v2_frame('"' + "[" * 1_000 + '"')).payload["d"]) == 1_000


def test_an_event_name_over_the_limit_is_refused_without_echoing_it() -> None:
    assert V2.decode(v2_frame("1", event="e" * MAX_NAME)).event == "e" * MAX_NAME
    with pytest.raises(MessageRefused) as info:
        V2.decode(v2_frame("1", event="e" * (MAX_NAME + 1)))
    assert info.value.reason == "event too long"
    assert "eee" not in str(info.value)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (v2_frame("1", topic="t" * (MAX_NAME + 1)), "topic of 256 characters"),
        (v2_frame("1", ref='{"a":1}'), "ref must be a string, a number or null"),
        (v2_frame("1", ref="[1]"), "ref must be a string, a number or null"),
        (v2_frame("1", ref='"' + "r" * (MAX_NAME + 1) + '"'), "ref of 256 characters"),
        (b'[{"x":1},"1","t","e",{}]', "join_ref must be"),
        (b'{"topic":"t","event":"e","payload":{},"ref":[1]}', "ref must be"),
    ],
)
def test_an_envelope_that_cannot_be_answered_is_invalid(data: bytes, why: str) -> None:
    serializer = V1 if data.startswith(b"{") else V2
    with pytest.raises(InvalidMessage, match=why) as info:
        serializer.decode(data)
    assert not isinstance(info.value, MessageRefused)


@pytest.mark.parametrize("ref", ["7", 7, 1.5, True, None])
def test_scalar_refs_decode_as_sent(ref: Any) -> None:
    message = V2.decode(json.dumps([ref, ref, "t", "e", {}]).encode())
    assert (message.ref, message.join_ref) == (ref, ref)
