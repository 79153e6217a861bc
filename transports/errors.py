"""Exceptions of `alight.transports`.

::

    TransportError
    ├── InvalidQuery            a query string breaks Plug's rules (also a ValueError)
    ├── WebSocketProtocolError  a client broke RFC 6455; carries the close code to send
    └── InvalidLongPollBody     a long-poll POST body is neither ndjson frames nor one frame

Transports never let these reach the client as a crash: each becomes a close code or
an HTTP status (1002/1007/1009, 400, 403), and only that connection is affected.
"""

from __future__ import annotations

from ..errors import AlightError


class TransportError(AlightError):
    """Root of every exception raised by `alight.transports`."""


class InvalidQuery(TransportError, ValueError):  # noqa: N818 - says what is wrong, as InvalidMessage
    """The query string is over a bound or not valid UTF-8 once decoded (Plug's
    ``Plug.Conn.InvalidQueryError``, HTTP 400). The message says which."""


class WebSocketProtocolError(TransportError):
    """The client broke the WebSocket protocol; ``code`` is the close code to answer."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class InvalidLongPollBody(TransportError):  # noqa: N818 - says what is wrong, as InvalidMessage
    """A long-poll POST body whose ndjson lines are neither JSON arrays nor base64."""


__all__ = ["InvalidLongPollBody", "InvalidQuery", "TransportError", "WebSocketProtocolError"]
