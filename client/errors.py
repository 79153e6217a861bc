"""Exceptions of `alight.client`.

::

    ClientError
    ├── JoinError        the server refused a join (its reply is in ``response``)
    ├── PushTimeout      no reply to a join or push within its timeout (also a TimeoutError)
    ├── ChannelClosed    the channel closed (phx_close, leave) before the reply came
    ├── ConnectFailed    a connection attempt failed: refused by the server (403), no
    │                    socket there (404), nothing listening, no answer (``status``,
    │                    ``definitive`` when retrying cannot help)
    └── ClientEncodeError      a frame cannot be encoded (a binary field over 255 bytes, ...)

A reply with status ``"error"`` to an ordinary push is *not* an exception: `Channel.push`
returns a `Reply` and the caller looks at ``reply.status`` (Phoenix's statuses are
free-form strings). Only a refused join raises, because nothing can be done on a channel
that is not joined.
"""

from __future__ import annotations

from typing import Any

from ..errors import AlightError


class ClientError(AlightError):
    """Root of every exception raised by `alight.client`."""


class JoinError(ClientError):
    """The server answered a join with an error reply; ``response`` is what it said
    (``{"reason": "unmatched topic"}`` when no channel route matches the topic)."""

    def __init__(self, topic: str, response: Any) -> None:
        self.topic = topic
        self.response = response
        super().__init__(f"join of {topic!r} refused: {response!r}")


class PushTimeout(ClientError, TimeoutError):  # noqa: N818 (phoenix.js says "timeout")
    """No reply to ``event`` on ``topic`` arrived within ``timeout`` seconds (phoenix.js's
    ``receive("timeout")``). A buffered push that timed out was never sent. Also a
    `TimeoutError`, so ``except TimeoutError`` catches it."""

    def __init__(self, topic: str, event: str, timeout: float) -> None:
        self.topic = topic
        self.event = event
        self.timeout = timeout
        super().__init__(f"no reply to {event!r} on {topic!r} within {timeout} s")


class ChannelClosed(ClientError):  # noqa: N818 (a state, like `NoProc`)
    """The channel was closed (the server sent ``phx_close``, or `Channel.leave` was
    called) while a push was waiting for its reply, or a push was made on a closed channel."""


class ConnectFailed(ClientError):  # noqa: N818 - names what happened
    """A connection attempt failed, said for what it is: the server refused it (HTTP
    403: its ``Socket.connect`` said no, or the origin or token), there is no socket at
    that path (404), nothing listens there, the name does not resolve, or no answer came.

    ``status`` is the HTTP status when the server answered; ``definitive`` is True when
    the server answered with a refusal, which retrying does not change; ``retry_in`` is
    the seconds until the socket tries again (set when it is handed to ``on_error``)."""

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        self.url = url
        self.reason = reason
        self.status = status
        self.definitive = status is not None and 400 <= status < 500 and status != 408
        self.retry_in: float | None = None
        super().__init__(f"cannot connect to {url}: {reason}")


class ClientEncodeError(ClientError):
    """A frame cannot be encoded: a string field over 255 bytes in a binary frame, or a
    payload that is not JSON-encodable."""
