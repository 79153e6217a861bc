"""The long-poll transport's wire, exactly as the phoenix 1.8.16 client speaks it.

Every answer is HTTP 200 with the real status in the JSON body (docs/protocol.md §5):
a GET without a usable session token creates a session and answers ``410`` with
its token; a GET with a token returns what the session has buffered (``200``) or
waits up to the window (``204``); a POST hands each ndjson line to the session and
answers ``200`` once all were handled (``408`` if not within the window, ``410`` if
the session is gone; ``413``, handling none of them, if one is over the endpoint's
``max_frame_size``, as a WebSocket closes with 1009). A refused connection or origin
is ``{"status": 403}``.

This module is the transport's half: the POST body codec, the `LongPollConn` buffer
the socket layer writes to, and the answers' shapes. The sessions themselves — found
through PubSub by the topic in a signed token, under the endpoint's supervisor — are
the endpoint's (`alight.channels.longpoll`), because they are made of channel
machinery (tokens, PubSub); this module imports nothing of `alight.channels`.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Final

import orjson

from .base import CLOSE_NORMAL, LONGPOLL, Conn, ConnectInfo, ConnLimits, Frame, TransportStats
from .errors import InvalidLongPollBody
from .http import HttpRequest, HttpResponse
from .policy import SLOW_CONSUMER, ConnectionPolicy

log = logging.getLogger("alight.transports.longpoll")

NDJSON: Final = "application/x-ndjson"
LONGPOLL_MAX_BATCH: Final = 100
"""At most this many lines of a POST body are processed (Phoenix's bound; the client
never sends more); later lines are dropped, as Phoenix does."""

JSON_HEADERS = (
    ("content-type", "application/json; charset=utf-8"),
    ("access-control-allow-origin", "*"),
    ("cache-control", "no-store"),
)


def status_response(status: int, **fields: Any) -> HttpResponse:
    """A long-poll answer: HTTP 200 with ``{"status": status, **fields}``."""
    return HttpResponse(200, headers=JSON_HEADERS, body=orjson.dumps({"status": status, **fields}))


def preflight_response(request: HttpRequest) -> HttpResponse:
    """The answer to a CORS preflight (``OPTIONS``) of a long-poll request."""
    allow = request.header("access-control-request-headers") or ""
    return HttpResponse(
        200,
        headers=(
            ("access-control-allow-origin", "*"),
            ("access-control-allow-headers", allow),
            ("access-control-allow-methods", "get, post, options"),
            ("access-control-max-age", "3600"),
        ),
    )


def longpoll_connect_info(request: HttpRequest) -> ConnectInfo:
    """The `ConnectInfo` of a long-poll request (its auth token in ``X-Phoenix-AuthToken``)."""
    return ConnectInfo(
        peer=request.peer,
        uri=request.path + ("?" + request.query_string if request.query_string else ""),
        headers=request.headers,
        user_agent=request.header("user-agent"),
        auth_token=request.header("x-phoenix-authtoken"),
        transport=LONGPOLL,
    )


def longpoll_messages(frames: Iterable[Frame]) -> list[str]:
    """The ``messages`` list of a long-poll GET response: each frame's JSON as a string.

    Raises `ValueError` for a binary frame: the long-poll client cannot decode server
    binary frames (Phoenix sends garbage or fails with 500, §2.4), so the long-poll
    connection never accepts them (``Conn.supports_binary`` is False).
    """
    messages = []
    for frame in frames:
        if frame.binary:
            raise ValueError("binary frames cannot be sent over long-poll")
        messages.append(frame.data.decode())
    return messages


def decode_longpoll_body(body: bytes, content_type: str | None) -> list[Frame]:
    """The client frames in a long-poll POST body, in order.

    With content type exactly ``application/x-ndjson`` (as Phoenix matches it) the body
    is split on ``\\n`` or ``\\r\\n`` and only the first `LONGPOLL_MAX_BATCH` parts are
    kept; a part starting with ``[`` is a text frame, any other part is the base64 of a
    binary frame. With any other content type the whole body is one text frame.

    Raises `InvalidLongPollBody` if a part is not valid base64 (Phoenix crashes on it,
    HTTP 500; alight answers 400); the frames themselves are decoded by the socket's
    serializer.
    """
    if content_type != NDJSON:
        return [Frame(bytes(body))]
    frames = []
    for number, line in enumerate(bytes(body).split(b"\n", LONGPOLL_MAX_BATCH)[:LONGPOLL_MAX_BATCH], 1):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.startswith(b"["):
            frames.append(Frame(line))
            continue
        try:
            frames.append(Frame(base64.b64decode(line, validate=True), binary=True))
        except (binascii.Error, ValueError):
            raise InvalidLongPollBody(
                f"line {number} of the long-poll body is neither a JSON array nor base64"
            ) from None
    return frames


class LongPollConn(Conn):
    """A bounded buffer of frames that the session hands to the next GET.

    ``wake`` is called when the buffer goes from empty to not empty, and on close, so
    that the session answers a waiting GET. Its bound and close state are the
    `ConnectionPolicy`'s: a frame that would take the buffer over ``max_buffer`` bytes
    closes the connection as a slow consumer (counted in ``stats``), as a WebSocket is.
    """

    transport = LONGPOLL

    def __init__(self, wake: Callable[[], None], limits: ConnLimits, stats: TransportStats) -> None:
        self.frames: deque[Frame] = deque()
        self.buffered = 0
        self.dropped_binary = 0
        self._wake = wake
        self.policy = ConnectionPolicy(limits, stats)
        self.policy.opened(0.0)  # a long-poll session's socket is open once it exists

    def write(self, frame: Frame) -> None:
        if self.policy.closed:
            return
        if frame.binary:
            # The JS client cannot decode binary frames over long-poll (docs/protocol.md §2.4).
            self.dropped_binary += 1
            log.warning("dropping a binary frame: long-poll clients cannot receive binary payloads")
            return
        if not self.policy.admits(len(frame.data), self.buffered):
            self.close(*SLOW_CONSUMER)
            return
        self.frames.append(frame)
        self.buffered += len(frame.data)
        if len(self.frames) == 1:
            self._wake()

    def take(self) -> list[Frame]:
        """Everything buffered, in order; the buffer is empty afterwards."""
        frames = list(self.frames)
        self.frames.clear()
        self.buffered = 0
        return frames

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if self.policy.start_close():
            self._wake()

    @property
    def closed(self) -> bool:
        return self.policy.closed

    def supports_binary(self) -> bool:
        return False


__all__ = [
    "JSON_HEADERS",
    "LONGPOLL_MAX_BATCH",
    "NDJSON",
    "LongPollConn",
    "decode_longpoll_body",
    "longpoll_connect_info",
    "longpoll_messages",
    "preflight_response",
    "status_response",
]
