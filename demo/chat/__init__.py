"""The chat app of ``alight demo``: a 3-node cluster serving rooms with presence.

``alight demo`` starts the nodes (`alight.launcher`) with
``alight.demo.chat.app:app``; the page at ``/`` is built on alight.js. See
`alight.demo.chat.app` for the events, `ChatLimits` for the bounds.
"""

from ._limits import ChatLimits, LimitExceeded, RateLimit
from .app import ChatEndpoint, ChatSocket, RoomChannel, make_app

APP = "alight.demo.chat.app:app"
"""The ``MODULE:APP`` every node of ``alight demo`` runs."""

__all__ = ["APP", "ChatEndpoint", "ChatLimits", "ChatSocket", "LimitExceeded", "RateLimit", "RoomChannel", "make_app"]
