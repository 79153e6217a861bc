"""Exceptions of `alight.channels`.

::

    ChannelError
    ├── InvalidMessage      a frame could not be decoded (bad JSON, wrong shape, ...)
    ├── EncodeError         a message cannot be encoded (binary on V1, field > 255 bytes, ...)
    ├── UnsupportedVsn      the client asked for a serializer version we do not speak
    ├── InvalidReturn       a Socket/Channel callback returned an unaccepted value
    ├── NotJoined           push/broadcast/reply before the channel has joined
    └── InvalidToken        a signed token is missing, forged, tampered or malformed
        └── ExpiredToken    a genuine token older than ``max_age``

A refused connection or join is not an exception: `connect` and `join` return
results that say so, and the client gets Phoenix's answer on the wire.
"""

from __future__ import annotations

from typing import Any


class ChannelError(Exception):
    """Root of every exception raised by `alight.channels`."""


class InvalidMessage(ChannelError):  # noqa: N818 (Phoenix's names)
    """A client frame could not be decoded; the message says what was wrong."""


class EncodeError(ChannelError):
    """A message cannot be encoded by this serializer."""


class UnsupportedVsn(ChannelError):  # noqa: N818 (Phoenix's names)
    """No serializer speaks the requested ``vsn``."""

    def __init__(self, vsn: str) -> None:
        self.vsn = vsn
        super().__init__(f"unsupported serializer vsn {vsn!r}")


class InvalidReturn(ChannelError):  # noqa: N818 (Phoenix's names)
    """A callback returned a value outside its accepted shapes; lists them."""

    def __init__(self, callback: str, value: Any, accepted: str) -> None:
        self.callback = callback
        self.value = value
        super().__init__(f"{callback} returned {value!r}; expected one of: {accepted}")


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
