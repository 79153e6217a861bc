"""Phoenix's channel serializers, sans-I/O: vsn 1.0.0 (JSON objects) and 2.0.0 (JSON
arrays and binary frames), serializer negotiation, and the long-poll body helpers.

The equivalents of ``Phoenix.Socket.V1.JSONSerializer`` and ``V2.JSONSerializer``
(docs/protocol.md §2, output shapes §2.3). Bytes in, typed messages out; typed messages
in, `Frame` out. Nothing here does I/O, so everything is tested with plain values.

Decoding a client frame either returns a `Message` or raises `InvalidMessage` whose
text says what was wrong; Phoenix crashes the socket process on such a frame (close
1011), and the socket layer decides what to do. Encoding either returns a `Frame` or
raises `EncodeError`; Phoenix raises in the channel in the same cases.

JSON library: orjson. Measured on CPython 3.11.7 (2 cores), best of 5 x 200 000 calls,
against a prebuilt ``json.JSONEncoder(separators=(",", ":"), ensure_ascii=False,
allow_nan=False).encode(v).encode()`` and ``json.loads``:

- encode a broadcast ``[null,null,topic,event,{2 keys, ~100 bytes}]``: json 1 876 ns,
  orjson 123 ns (15x);
- encode a reply ``[jr,ref,topic,"phx_reply",{"status":..,"response":{..}}]``: json
  1 969 ns, orjson 139 ns (14x);
- decode a 77-byte client push: json 2 038 ns, orjson 335 ns (6x).

End to end, including building the `Frame`: `V2Serializer.fastlane` ~420 ns,
``encode_push`` ~400 ns, ``encode_reply`` ~650 ns, `V1Serializer.fastlane` ~560 ns.
(``decode`` is ~1.5 us, most of it the frozen `Message` constructor.)

What orjson does with values that plain JSON has no room for, and so what these
serializers do (never a crash of anything but `EncodeError`/`InvalidMessage`):

- dict keys that are not `str` (``{1: "a"}``): `EncodeError` ("Dict key must be str").
  Python's json would silently turn them into strings, but then a collision such as
  ``{1: .., "1": ..}`` would be ambiguous, so we refuse.
- integers outside the 64-bit range: `EncodeError` on output. On input, such
  numbers decode as floats (as a JavaScript client would read them).
- ``NaN`` and the infinities encode as ``null``, exactly like JavaScript's
  ``JSON.stringify``; they are never written as invalid JSON. On input, ``NaN``,
  ``Infinity`` and numbers that overflow a double are `InvalidMessage`.
- `bytes` inside a JSON payload, lone surrogates in strings, cycles and nesting
  deeper than 254 levels: `EncodeError`. Invalid UTF-8 on input: `InvalidMessage`.
- orjson also encodes dataclasses, ``datetime``, ``UUID`` and enums natively; tuples
  encode as arrays.

Limits on what a client sends, and how each is answered (the same way over WebSocket
and long-poll; Phoenix has none of these bounds and crashes the socket on a bad frame):

- not JSON or UTF-8, not an array (V2) / object (V1) of the protocol's shape, a topic
  or event that is not a string, a topic over `MAX_NAME` characters, a ref or join_ref
  that is not a JSON scalar or is a string over `MAX_NAME` characters: `InvalidMessage`.
  The socket closes with 1011 ("invalid message"), as Phoenix's crashed socket does;
  nothing of the frame is echoed.
- a well-formed envelope whose event name is over `MAX_NAME` characters, or whose
  payload is nested deeper than `MAX_DEPTH`: `MessageRefused`. The socket answers the
  ref with ``{"status": "error", "response": {"reason": "event too long"}}`` (or
  ``"payload too deep"``) and stays up with its channels.
- JSON nested past orjson's own decode limit (1,024 levels) cannot be decoded at all:
  `InvalidMessage` (1011).

`MAX_DEPTH` is one bound for both directions: orjson encodes at most 254 levels, a
reply wraps the payload it answers in three (``[.., {"response": payload}]``), so any
payload a client could send can be echoed back with room to spare.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, Final

import orjson

from .errors import EncodeError, InvalidMessage, MessageRefused, UnsupportedVsn
from .message import PHX_REPLY, Broadcast, Encoded, Frame, Message, Reply

__all__ = [
    "MAX_DEPTH",
    "MAX_NAME",
    "V1",
    "V2",
    "Serializer",
    "V1Serializer",
    "V2Serializer",
    "negotiate",
]

# Binary frame kinds (docs/protocol.md §2.4).
_PUSH: Final = 0
_REPLY: Final = 1
_BROADCAST: Final = 2
_MAX_FIELD: Final = 255
_BINARY_TYPES: Final = (bytes, bytearray, memoryview)


_json = orjson.dumps
_JSONEncodeError = orjson.JSONEncodeError


def _encode_error(exc: Exception) -> EncodeError:
    return EncodeError(f"cannot encode as JSON: {exc}")


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"invalid JSON or UTF-8: {exc}") from None


def _value(payload: Any) -> Any:
    """An `Encoded` payload's pre-encoded bytes, or the payload itself."""
    return payload.fragment if type(payload) is Encoded else payload


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {value!r:.40}"


def _not_a_map(what: str, payload: Any) -> EncodeError:
    return EncodeError(
        f"{what} payload must be a dict or bytes (Phoenix: a map or {{:binary, data}}), got {_kind(payload)}"
    )


MAX_DEPTH: Final = 128
"""Levels of nesting a client payload may have (``{"a": [1]}`` has 2; serde_json's
default bound). Deeper payloads are refused with an error reply (`MessageRefused`)."""

MAX_NAME: Final = 255
"""Characters a topic, an event name or a string ref may have (the size of a binary
frame's fields). A longer topic or ref closes the socket, a longer event is refused."""

_SCALARS: Final = (str, int, float, bool, type(None))


def _check_names(topic: Any, event: Any) -> None:
    if not isinstance(topic, str):
        raise InvalidMessage(f"topic must be a string, got {_kind(topic)}")
    if not isinstance(event, str):
        raise InvalidMessage(f"event must be a string, got {_kind(event)}")
    if len(topic) > MAX_NAME:
        raise InvalidMessage(f"topic of {len(topic)} characters; at most {MAX_NAME}")


def _check_ref(ref: Any, what: str) -> None:
    if not isinstance(ref, _SCALARS):
        raise InvalidMessage(f"{what} must be a string, a number or null, got {_kind(ref)}")
    if type(ref) is str and len(ref) > MAX_NAME:
        raise InvalidMessage(f"{what} of {len(ref)} characters; at most {MAX_NAME}")


def _depth(value: Any) -> int:
    """How deeply ``value`` nests (a scalar 0, ``[]`` 1, ``[[1]]`` 2); stops counting
    past `MAX_DEPTH` (iterative: it must not recurse on what it is there to bound)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if type(item) is dict:
            children: Any = item.values()
        elif type(item) is list:
            children = item
        else:
            continue
        if depth > deepest:
            deepest = depth
            if deepest > MAX_DEPTH:
                return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _checked(data: bytes, topic: Any, event: Any, payload: Any, ref: Any, join_ref: Any) -> Message:
    """The `Message` if it keeps the limits; else `InvalidMessage` or `MessageRefused`.
    (On every client frame: the common case, short string names and refs, is tested
    first with exact type checks; the slow checks only say what is wrong.)"""
    if type(topic) is not str or type(event) is not str or len(topic) > MAX_NAME:
        _check_names(topic, event)
    if not (ref is None or (type(ref) is str and len(ref) <= MAX_NAME)):
        _check_ref(ref, "ref")
    if not (join_ref is None or (type(join_ref) is str and len(join_ref) <= MAX_NAME)):
        _check_ref(join_ref, "join_ref")
    if len(event) > MAX_NAME:
        raise MessageRefused("event too long", topic, ref, join_ref)
    # Fast paths: nesting past MAX_DEPTH takes more than 2 * MAX_DEPTH bytes (an opener
    # and a closer per level), and as many openers (a C-speed count); the walk runs
    # only for frames that pass both.
    if len(data) > 2 * MAX_DEPTH and data.count(b"[") + data.count(b"{") > MAX_DEPTH and _depth(payload) > MAX_DEPTH:
        raise MessageRefused("payload too deep", topic, ref, join_ref)
    return Message(topic, event, payload, ref, join_ref)


class Serializer(ABC):
    """Turns client frames into `Message` and server messages into `Frame`.

    One instance per version (`V1`, `V2`), stateless and shared: the fastlane keys
    its "encode once per serializer" cache by the instance.
    """

    vsn: str = ""
    """The version this serializer speaks, as negotiated (``"1.0.0"``, ``"2.0.0"``)."""

    supports_binary: bool = False
    """Whether `bytes` payloads can be encoded (binary frames)."""

    @abstractmethod
    def decode(self, data: bytes, binary: bool = False) -> Message:
        """Decode one client frame; ``binary`` says it came as a binary WebSocket frame.

        Raises `InvalidMessage` (saying what was wrong) for anything that is not a
        well-formed frame of this version; nothing else.
        """

    @abstractmethod
    def encode_reply(self, reply: Reply) -> Frame:
        """Encode a ``phx_reply`` (``{"status": .., "response": ..}``). The response may
        be any JSON value, or `bytes` (V2: a kind-1 binary frame).

        Raises `EncodeError` if the response cannot be encoded."""

    @abstractmethod
    def encode_push(self, message: Message) -> Frame:
        """Encode a message from the server: a channel push (``ref`` None), or a
        ``phx_close``/``phx_error`` (``ref`` = ``join_ref``). The refs are written as
        they are. The payload must be a dict, or `bytes` (V2: a kind-0 binary frame,
        which carries no ref).

        Raises `EncodeError` for any other payload, or one that cannot be encoded."""

    @abstractmethod
    def fastlane(self, broadcast: Broadcast) -> Frame:
        """Encode a broadcast once for every subscriber of this serializer (join_ref and
        ref null). The payload must be a dict, or `bytes` (V2: a kind-2 binary frame).

        Raises `EncodeError` for any other payload, or one that cannot be encoded."""

    def encode(self, message: Message | Reply | Broadcast) -> Frame:
        """Dispatch to `encode_reply`, `encode_push` or `fastlane` by type."""
        if isinstance(message, Reply):
            return self.encode_reply(message)
        if isinstance(message, Broadcast):
            return self.fastlane(message)
        return self.encode_push(message)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} vsn={self.vsn}>"


class V1Serializer(Serializer):
    """vsn 1.0.0: one JSON object per text frame, no binary (docs/protocol.md §2.2).

    Input: an object with ``topic``, ``event``, ``payload`` and ``ref`` (``join_ref``
    optional, extra keys ignored). Output: exactly ``topic``, ``event``, ``payload``,
    ``ref``; never ``join_ref``.
    """

    vsn = "1.0.0"
    supports_binary = False

    def decode(self, data: bytes, binary: bool = False) -> Message:
        if binary:
            raise InvalidMessage("binary frame on a 1.0.0 socket: binary payloads need vsn=2.0.0")
        value = _loads(data)
        if not isinstance(value, dict):
            raise InvalidMessage(f"expected a JSON object with topic, event, payload and ref, got {_kind(value)}")
        try:
            topic = value["topic"]
            event = value["event"]
            payload = value["payload"]
            ref = value["ref"]
        except KeyError as exc:
            raise InvalidMessage(f"missing key {exc.args[0]!r}") from None
        return _checked(data, topic, event, payload, ref, value.get("join_ref"))

    def encode_reply(self, reply: Reply) -> Frame:
        if isinstance(reply.payload, _BINARY_TYPES):
            raise EncodeError("binary reply on a 1.0.0 socket: binary payloads need vsn=2.0.0")
        response = {"status": reply.status, "response": _value(reply.payload)}
        try:
            return Frame(_json({"topic": reply.topic, "event": PHX_REPLY, "payload": response, "ref": reply.ref}))
        except _JSONEncodeError as exc:
            raise _encode_error(exc) from exc

    def encode_push(self, message: Message) -> Frame:
        payload = message.payload
        if type(payload) is Encoded:
            payload = payload.fragment
        elif not isinstance(payload, dict):
            raise self._bad_payload("push", payload)
        try:
            return Frame(
                _json({"topic": message.topic, "event": message.event, "payload": payload, "ref": message.ref})
            )
        except _JSONEncodeError as exc:
            raise _encode_error(exc) from exc

    def fastlane(self, broadcast: Broadcast) -> Frame:
        payload = broadcast.payload
        if type(payload) is Encoded:
            payload = payload.fragment
        elif not isinstance(payload, dict):
            raise self._bad_payload("broadcast", payload)
        try:
            return Frame(_json({"topic": broadcast.topic, "event": broadcast.event, "payload": payload, "ref": None}))
        except _JSONEncodeError as exc:
            raise _encode_error(exc) from exc

    @staticmethod
    def _bad_payload(what: str, payload: Any) -> EncodeError:
        if isinstance(payload, _BINARY_TYPES):
            return EncodeError(f"binary {what} on a 1.0.0 socket: binary payloads need vsn=2.0.0")
        return _not_a_map(what, payload)


class V2Serializer(Serializer):
    """vsn 2.0.0: ``[join_ref, ref, topic, event, payload]`` per text frame, and the
    binary frames of docs/protocol.md §2.4 for `bytes` payloads.

    Input arrays need at least 5 elements (extra ones are ignored); the refs and the
    payload may be any JSON value and are kept as they are. A binary client frame is
    a kind-0 push whose refs, topic and event are UTF-8 text (an empty ref stays
    ``""``, as in Phoenix) and whose payload is the remaining bytes.
    """

    vsn = "2.0.0"
    supports_binary = True

    def decode(self, data: bytes, binary: bool = False) -> Message:
        if binary:
            return _decode_binary(data)
        value = _loads(data)
        if not isinstance(value, list):
            raise InvalidMessage(f"expected a JSON array [join_ref, ref, topic, event, payload], got {_kind(value)}")
        if len(value) < 5:
            raise InvalidMessage(
                f"expected an array of 5 elements [join_ref, ref, topic, event, payload], got {len(value)}"
            )
        join_ref, ref, topic, event, payload = value[:5]
        return _checked(data, topic, event, payload, ref, join_ref)

    def encode_reply(self, reply: Reply) -> Frame:
        payload = reply.payload
        if isinstance(payload, _BINARY_TYPES):
            fields = (_ref_text(reply.join_ref, "join_ref"), _ref_text(reply.ref, "ref"), reply.topic, reply.status)
            return Frame(_binary(_REPLY, fields, payload), binary=True)
        response = {"status": reply.status, "response": _value(payload)}
        try:
            return Frame(_json([reply.join_ref, reply.ref, reply.topic, PHX_REPLY, response]))
        except _JSONEncodeError as exc:
            raise _encode_error(exc) from exc

    def encode_push(self, message: Message) -> Frame:
        payload = message.payload
        if type(payload) is Encoded:
            payload = payload.fragment
            return Frame(_json([message.join_ref, message.ref, message.topic, message.event, payload]))
        if isinstance(payload, dict):
            try:
                return Frame(_json([message.join_ref, message.ref, message.topic, message.event, payload]))
            except _JSONEncodeError as exc:
                raise _encode_error(exc) from exc
        if isinstance(payload, _BINARY_TYPES):
            fields = (_ref_text(message.join_ref, "join_ref"), message.topic, message.event)
            return Frame(_binary(_PUSH, fields, payload), binary=True)
        raise _not_a_map("push", payload)

    def fastlane(self, broadcast: Broadcast) -> Frame:
        payload = broadcast.payload
        if type(payload) is Encoded:
            return Frame(_json([None, None, broadcast.topic, broadcast.event, payload.fragment]))
        if isinstance(payload, dict):
            try:
                return Frame(_json([None, None, broadcast.topic, broadcast.event, payload]))
            except _JSONEncodeError as exc:
                raise _encode_error(exc) from exc
        if isinstance(payload, _BINARY_TYPES):
            return Frame(_binary(_BROADCAST, (broadcast.topic, broadcast.event), payload), binary=True)
        raise _not_a_map("broadcast", payload)


def _ref_text(ref: Any, what: str) -> str:
    """A ref as binary frames carry it: Elixir's ``to_string`` (nil -> "")."""
    if ref is None:
        return ""
    if isinstance(ref, str):
        return ref
    if isinstance(ref, bool):
        return "true" if ref else "false"
    if isinstance(ref, int | float):
        return str(ref)
    raise EncodeError(f"{what} {ref!r:.40} cannot be written in a binary frame (must be text or a number)")


_FIELD_NAMES: Final = {
    _PUSH: ("join_ref", "topic", "event"),
    _REPLY: ("join_ref", "ref", "topic", "status"),
    _BROADCAST: ("topic", "event"),
}


def _binary(kind: int, fields: Sequence[str], payload: bytes | bytearray | memoryview) -> bytes:
    encoded = []
    for name, field in zip(_FIELD_NAMES[kind], fields, strict=True):
        if not isinstance(field, str):
            raise EncodeError(f"{name} must be a string, got {_kind(field)}")
        try:
            data = field.encode()
        except UnicodeEncodeError as exc:
            raise EncodeError(f"{name} is not valid UTF-8 text: {exc}") from None
        if len(data) > _MAX_FIELD:
            raise EncodeError(f"{name} is {len(data)} bytes; binary frames allow at most {_MAX_FIELD}")
        encoded.append(data)
    header = bytes([kind, *(len(data) for data in encoded)])
    return b"".join((header, *encoded, payload))


_CLIENT_FIELDS: Final = ("join_ref", "ref", "topic", "event")


def _decode_binary(data: bytes) -> Message:
    """A client kind-0 push: ``0 | 4 sizes | join_ref | ref | topic | event | payload``."""
    data = bytes(data)
    if len(data) < 5:
        raise InvalidMessage(f"binary frame of {len(data)} bytes is shorter than its 5-byte header")
    if data[0] != _PUSH:
        raise InvalidMessage(f"binary frame of kind {data[0]}: clients may only send kind 0 (push)")
    end = 5 + data[1] + data[2] + data[3] + data[4]
    if end > len(data):
        raise InvalidMessage(
            f"truncated binary frame: its header announces {end} bytes of header and fields, got {len(data)}"
        )
    texts = []
    pos = 5
    for index, name in enumerate(_CLIENT_FIELDS, 1):
        size = data[index]
        try:
            texts.append(data[pos : pos + size].decode())
        except UnicodeDecodeError:
            raise InvalidMessage(f"binary frame {name} is not valid UTF-8") from None
        pos += size
    join_ref, ref, topic, event = texts
    # Each field is at most 255 bytes, so within MAX_NAME; the payload is bytes.
    return Message(topic, event, data[end:], ref, join_ref)


V1: Final = V1Serializer()
"""The vsn 1.0.0 serializer (requirement ``~> 1.0.0``)."""

V2: Final = V2Serializer()
"""The vsn 2.0.0 serializer (requirement ``~> 2.0.0``)."""

DEFAULT_SERIALIZERS: Final[tuple[tuple[Serializer, str], ...]] = ((V1, "~> 1.0.0"), (V2, "~> 2.0.0"))

# Semantic versions as Elixir's Version.parse/1 accepts them (no leading zeros, optional
# pre-release and build metadata).
_NUM = r"(0|[1-9][0-9]*)"
_IDENT = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_SEMVER = re.compile(rf"{_NUM}\.{_NUM}\.{_NUM}(-{_IDENT}(?:\.{_IDENT})*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?")
_REQUIREMENT = re.compile(rf"~>\s*{_NUM}\.{_NUM}(?:\.{_NUM})?")


def _matches(major: int, minor: int, patch: int, pre: bool, requirement: str) -> bool:
    """Elixir's ``Version.match?`` for ``~> X.Y.Z`` (>= X.Y.Z, < X.(Y+1).0-0) and
    ``~> X.Y`` (>= X.Y.0, < (X+1).0.0-0), pre-releases allowed."""
    found = _REQUIREMENT.fullmatch(requirement)
    if found is None:
        raise ValueError(f"unsupported serializer requirement {requirement!r}; use '~> X.Y.Z' or '~> X.Y'")
    low_major, low_minor = int(found[1]), int(found[2])
    low_patch = int(found[3]) if found[3] is not None else 0
    upper = (low_major, low_minor + 1, 0) if found[3] is not None else (low_major + 1, 0, 0)
    # A pre-release sorts before its release: 1.0.0-rc < 1.0.0.
    at_least = (major, minor, patch, not pre) >= (low_major, low_minor, low_patch, True)
    return at_least and (major, minor, patch) < upper


def negotiate(vsn: str | None, serializers: Iterable[tuple[Serializer, str]] = DEFAULT_SERIALIZERS) -> Serializer:
    """The serializer for the client's ``vsn`` query parameter, by Phoenix's rules.

    ``None`` (no ``vsn``) means ``"1.0.0"``. The first serializer whose requirement
    the version matches wins (``1.0.5`` -> `V1`, ``2.0.9`` -> `V2`). A ``vsn`` that
    is not a semantic version, or that matches none, raises `UnsupportedVsn`; the
    transport then refuses the connection (WebSocket 403, long-poll ``{"status":403}``).
    """
    version = "1.0.0" if vsn is None else vsn
    # Bounded so that int() never meets a huge digit string.
    parsed = _SEMVER.fullmatch(version) if isinstance(version, str) and len(version) <= 64 else None
    if parsed is None:
        raise UnsupportedVsn(str(version))
    major, minor, patch, pre = int(parsed[1]), int(parsed[2]), int(parsed[3]), parsed[4] is not None
    for serializer, requirement in serializers:
        if _matches(major, minor, patch, pre, requirement):
            return serializer
    raise UnsupportedVsn(version)
