"""The chat's limits, as pure functions and values (no I/O, no clock of their own).

Every check returns the cleaned value or raises `LimitExceeded` whose message is
what the client is told (``{"reason": str(error)}``), so a bad name, room or message
gets a clear error reply and nothing else happens. `RateLimit` is a token bucket
driven by an injected ``now`` (the caller's monotonic clock), so tests feed it plain
numbers.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

ROOM_PREFIX = "room:"
_ROOM_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_DEVICE = re.compile(r"[A-Za-z0-9_-]+")


class LimitExceeded(ValueError):  # noqa: N818 - reads as what happened
    """Input outside the chat's limits; ``str(error)`` is the reason sent to the client."""


@dataclass(frozen=True, slots=True)
class ChatLimits:
    """The chat's explicit bounds. Raises `ValueError` naming a bad field."""

    max_name: int = 24
    """Characters in a user name (after trimming spaces)."""
    max_room: int = 32
    """Characters in a room name (the part after ``room:``)."""
    max_device: int = 64
    """Characters in a device id."""
    max_message: int = 500
    """Characters in a message (after trimming spaces)."""
    burst: int = 5
    """Messages one connection (all its rooms) may send at once before the rate applies."""
    per_second: float = 1.0
    """Messages per second one connection may send in the long run."""
    join_burst: int = 10
    """Joins one connection may make at once (every room rejoining after a reconnect)
    before ``joins_per_second`` applies."""
    joins_per_second: float = 1.0
    """Joins per second one connection may make in the long run: each join and leave
    sends a presence diff to everyone in the room, so a join/leave (or crash/rejoin)
    loop must not run at the speed of a round trip."""
    history: int = 50
    """Messages kept per room on each node (the oldest go first)."""
    history_rooms: int = 100
    """Rooms whose history a node keeps (the least recently used go first)."""

    def __post_init__(self) -> None:
        counts = ("max_name", "max_room", "max_device", "max_message", "burst", "join_burst")
        for name in (*counts, "history", "history_rooms"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for rate in ("per_second", "joins_per_second"):
            if getattr(self, rate) <= 0:
                raise ValueError(f"{rate} must be > 0, got {getattr(self, rate)}")


def check_name(limits: ChatLimits, value: object) -> str:
    """The user name, trimmed; raises `LimitExceeded` unless it is 1..max_name
    printable characters."""
    if not isinstance(value, str):
        raise LimitExceeded("a name is required (connect parameter 'name')")
    name = value.strip()
    if not name:
        raise LimitExceeded("a name is required (connect parameter 'name')")
    if len(name) > limits.max_name:
        raise LimitExceeded(f"names are at most {limits.max_name} characters")
    if not _printable(name):
        raise LimitExceeded("names may not contain control characters")
    return name


def check_device(limits: ChatLimits, value: object) -> str:
    """The device id; raises `LimitExceeded` unless it is 1..max_device letters,
    digits, ``-`` or ``_``."""
    if not isinstance(value, str) or not value:
        raise LimitExceeded("a device id is required (connect parameter 'device')")
    if len(value) > limits.max_device or not _DEVICE.fullmatch(value):
        raise LimitExceeded(f"device ids are 1-{limits.max_device} letters, digits, '-' or '_'")
    return value


def check_room(limits: ChatLimits, topic: str) -> str:
    """The room name of ``room:NAME``; raises `LimitExceeded` unless NAME is
    1..max_room lowercase letters, digits, ``-`` or ``_`` (starting with a letter or digit)."""
    name = topic.removeprefix(ROOM_PREFIX)
    if len(name) > limits.max_room or not _ROOM_NAME.fullmatch(name):
        raise LimitExceeded(
            f"room names are 1-{limits.max_room} lowercase letters, digits, '-' or '_', starting with a letter or digit"
        )
    return name


def check_message(limits: ChatLimits, payload: object) -> str:
    """The body of a ``new_msg`` payload (``{"body": str}``), trimmed; raises
    `LimitExceeded` unless it is 1..max_message characters."""
    body = payload.get("body") if isinstance(payload, dict) else None
    if not isinstance(body, str):
        raise LimitExceeded('new_msg takes {"body": "some text"}')
    body = body.strip()
    if not body:
        raise LimitExceeded("empty messages are not sent")
    if len(body) > limits.max_message:
        raise LimitExceeded(f"messages are at most {limits.max_message} characters")
    return body


def _printable(text: str) -> bool:
    return not any(unicodedata.category(char) in ("Cc", "Cf") for char in text)


class RateLimit:
    """A token bucket: ``burst`` tokens, refilled at ``per_second``; `allow` takes one.

    Use it as ``if not bucket.allow(now): refuse``, with ``now`` from one monotonic
    clock (the event loop's ``time()``)."""

    __slots__ = ("_last", "_tokens", "burst", "per_second")

    def __init__(self, burst: int, per_second: float) -> None:
        self.burst = burst
        self.per_second = per_second
        self._tokens = float(burst)
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        """Take a token if there is one (True), else leave the bucket as it is (False)."""
        if self._last is not None:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.per_second)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next token, as of the last `allow` (0 if one is there)."""
        return max(0.0, (1.0 - self._tokens) / self.per_second)
