"""The typed values a client hands to its caller: `Message` and `Reply`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Message", "Reply"]


@dataclass(frozen=True, slots=True)
class Message:
    """One frame from the server: ``[join_ref, ref, topic, event, payload]`` (docs/protocol.md
    §2.1). ``payload`` is the decoded JSON value, or `bytes` for a binary frame; for a
    ``phx_reply`` it is ``{"status": ..., "response": ...}``. A broadcast has
    ``join_ref`` and ``ref`` both ``None``; a server push has ``ref`` ``None``."""

    topic: str
    event: str
    payload: Any
    ref: str | None = None
    join_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """The server's answer to a join or a push: Phoenix's free-form ``status``
    (``"ok"``, ``"error"``, ...) and its ``response`` (any JSON value, or `bytes` when the
    channel replied with a binary payload)."""

    status: str
    response: Any

    @property
    def ok(self) -> bool:
        """Whether ``status`` is ``"ok"``."""
        return self.status == "ok"
