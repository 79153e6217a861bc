"""Exceptions of `alight.channels`.

::

    ChannelError
    ├── InvalidMessage      a frame could not be decoded (bad JSON, wrong shape, ...)
    │   └── MessageRefused  it decoded, but breaks a limit (payload too deep, event
    │                       name too long): answered with an error reply
    ├── EncodeError         a message cannot be encoded (binary on V1, field > 255 bytes, ...)
    ├── UnsupportedVsn      the client asked for a serializer version we do not speak
    ├── InvalidChannelReturn  a Socket/Channel callback returned an unaccepted value
    ├── NotJoined           push/broadcast/reply before the channel has joined
    ├── EndpointNotRunning  an endpoint's runtime (node, PubSub, ...) was used before
    │                       its child_spec started on a node
    ├── InvalidToken        a signed token is missing, forged, tampered or malformed
    │   └── ExpiredToken    a genuine token older than ``max_age``
    └── TrackerError        presence (`alight.channels.presence`)
        ├── InvalidSettings, AlreadyTracked, NoPresence

`ChannelError` is an `alight.errors.AlightError`.

A refused connection or join is not an exception: `connect` and `join` return
results that say so, and the client gets Phoenix's answer on the wire.
"""

from __future__ import annotations

from typing import Any

from ..errors import AlightError


class ChannelError(AlightError):
    """Root of every exception raised by `alight.channels`."""


class InvalidMessage(ChannelError):  # noqa: N818 (Phoenix's names)
    """A client frame could not be decoded; the message says what was wrong."""


class MessageRefused(InvalidMessage):
    """A client frame decoded into a message that breaks one of the serializer's
    limits (`serializer.MAX_DEPTH`, `serializer.MAX_NAME`), while its topic and refs
    are usable: the socket answers ``ref`` with ``{"status": "error", "response":
    {"reason": reason}}`` and stays up, with its channels. ``reason`` is short and
    never echoes the offending part."""

    def __init__(self, reason: str, topic: str, ref: Any, join_ref: Any) -> None:
        self.reason = reason
        self.topic = topic
        self.ref = ref
        self.join_ref = join_ref
        super().__init__(reason)


class EncodeError(ChannelError):
    """A message cannot be encoded by this serializer."""


class UnsupportedVsn(ChannelError):  # noqa: N818 (Phoenix's names)
    """No serializer speaks the requested ``vsn``."""

    def __init__(self, vsn: str) -> None:
        self.vsn = vsn
        super().__init__(f"unsupported serializer vsn {vsn!r}")


class InvalidChannelReturn(ChannelError):  # noqa: N818 (Phoenix's names)
    """A callback returned a value outside its accepted shapes; lists them."""

    def __init__(self, callback: str, value: Any, accepted: str) -> None:
        self.callback = callback
        self.value = value
        super().__init__(f"{callback} returned {value!r}; expected one of: {accepted}")


class EndpointNotRunning(ChannelError):  # noqa: N818 - says what is wrong, as NotJoined
    """The endpoint's runtime was used before its ``child_spec`` started on a node (or
    after it stopped)."""


class NotJoined(ChannelError):  # noqa: N818 (Phoenix's names)
    """The channel has not joined yet (Phoenix raises the same inside ``join/3``)."""


class InvalidToken(ChannelError):  # noqa: N818 (Phoenix's names)
    """A token did not verify: missing, not signed with this secret and salt, tampered
    with, or malformed (Phoenix.Token's ``{:error, :invalid}`` / ``:missing``)."""


class ExpiredToken(InvalidToken):
    """A genuine token that is older than ``max_age`` (Phoenix.Token's ``{:error, :expired}``).

    A subclass of `InvalidToken`, so ``except InvalidToken`` treats both as "no valid
    token" while code that cares can tell an expired token apart.
    """
