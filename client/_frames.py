"""Client frames, sans-I/O: V2 (``vsn=2.0.0``, docs/protocol.md §2.3, §2.4) and V1 (``vsn=1.0.0``, §2.2).

The client side of the wire: `encode` turns an outgoing frame into what the WebSocket
sends (`str` for a JSON array, `bytes` for a binary push), `decode` turns what arrives into
a `Message`. The server's own serializer (`alight.channels.serializer`) encodes the other
direction and decodes client frames into server types, so it does not fit here; the
asymmetric binary layouts are the reason.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from .errors import ClientEncodeError
from .message import Message

__all__ = ["decode", "decode_v1", "encode", "encode_v1"]

_PUSH: Final = 0
_REPLY: Final = 1
_BROADCAST: Final = 2
_MAX_FIELD: Final = 255


def encode(join_ref: str | None, ref: str | None, topic: str, event: str, payload: Any) -> str | bytes:
    """The frame for ``[join_ref, ref, topic, event, payload]``: a binary push (kind 0)
    when ``payload`` is `bytes`, a JSON array text frame otherwise. Raises `ClientEncodeError`."""
    if isinstance(payload, bytes | bytearray | memoryview):
        fields = [(join_ref or "").encode(), (ref or "").encode(), topic.encode(), event.encode()]
        for field in fields:
            if len(field) > _MAX_FIELD:
                raise ClientEncodeError(f"binary frame field longer than {_MAX_FIELD} bytes: {field[:32]!r}...")
        return bytes([_PUSH, *(len(f) for f in fields)]) + b"".join(fields) + bytes(payload)
    try:
        return orjson.dumps([join_ref, ref, topic, event, payload]).decode()
    except orjson.JSONEncodeError as exc:
        raise ClientEncodeError(f"payload of {event!r} is not JSON-encodable: {exc}") from None


def decode(data: str | bytes) -> Message:
    """The `Message` in one frame from the server; `ValueError` if it is malformed."""
    if isinstance(data, str):
        frame = orjson.loads(data)
        if not isinstance(frame, list) or len(frame) < 5:
            raise ValueError(f"not a V2 frame: {data[:200]!r}")
        join_ref, ref, topic, event, payload = frame[:5]
        if not isinstance(topic, str) or not isinstance(event, str):
            raise ValueError(f"topic and event must be strings: {data[:200]!r}")
        return Message(topic, event, payload, _ref(ref), _ref(join_ref))
    return _decode_binary(bytes(data))


def encode_v1(join_ref: str | None, ref: str | None, topic: str, event: str, payload: Any) -> str:
    """The V1 (``vsn=1.0.0``) frame: a JSON object (§2.2). V1 has no binary frames, so a
    `bytes` payload raises `ClientEncodeError`."""
    if isinstance(payload, bytes | bytearray | memoryview):
        raise ClientEncodeError(f"vsn 1.0.0 cannot carry binary payloads (event {event!r}); use vsn 2.0.0")
    frame = {"topic": topic, "event": event, "payload": payload, "ref": ref, "join_ref": join_ref}
    try:
        return orjson.dumps(frame).decode()
    except orjson.JSONEncodeError as exc:
        raise ClientEncodeError(f"payload of {event!r} is not JSON-encodable: {exc}") from None


def decode_v1(data: str | bytes) -> Message:
    """The `Message` in one V1 frame (a JSON object; the server never sends ``join_ref``
    in V1, so it is ``None`` unless present); `ValueError` if it is malformed."""
    if isinstance(data, bytes):
        raise ValueError("vsn 1.0.0 has no binary frames")
    frame = orjson.loads(data)
    if not isinstance(frame, dict):
        raise ValueError(f"not a V1 frame: {data[:200]!r}")
    topic, event = frame.get("topic"), frame.get("event")
    if not isinstance(topic, str) or not isinstance(event, str) or "payload" not in frame:
        raise ValueError(f"not a V1 frame: {data[:200]!r}")
    return Message(topic, event, frame["payload"], _ref(frame.get("ref")), _ref(frame.get("join_ref")))


def _ref(value: Any) -> str | None:
    # Refs are opaque and echoed verbatim (§2.1); ours are decimal strings.
    return None if value is None else str(value)


def _decode_binary(data: bytes) -> Message:
    if not data:
        raise ValueError("empty binary frame")
    kind = data[0]
    if kind == _PUSH:
        join_ref, topic, event, rest = _fields(data, 3)
        return Message(topic, event, rest, None, join_ref or None)
    if kind == _REPLY:
        join_ref, ref, topic, status, rest = _fields(data, 4)
        return Message(topic, "phx_reply", {"status": status, "response": rest}, ref or None, join_ref or None)
    if kind == _BROADCAST:
        topic, event, rest = _fields(data, 2)
        return Message(topic, event, rest)
    raise ValueError(f"unknown binary frame kind {kind}")


def _fields(data: bytes, count: int) -> Any:
    """``count`` length-prefixed UTF-8 fields after the kind byte, then the raw rest."""
    if len(data) < 1 + count:
        raise ValueError("truncated binary frame header")
    sizes = data[1 : 1 + count]
    offset = 1 + count
    out: list[Any] = []
    for size in sizes:
        if offset + size > len(data):
            raise ValueError("truncated binary frame")
        out.append(data[offset : offset + size].decode())
        offset += size
    out.append(data[offset:])
    return out
