"""The connection policy: every decision a transport's connection makes, with no I/O.

One state machine for the WebSocket connection of the native server, the ASGI
adapter's WebSocket and the long-poll buffer, as websockets' ``Protocol`` is for its
asyncio, sync and trio layers: the shells pump bytes and call these methods; the
policy says what happens and counts it in the endpoint's one `TransportStats`.

What it decides:

- **state** (`PENDING` → `OPEN` → `CLOSING` → `CLOSED`): `start_close` moves an open
  connection to CLOSING and says whether the shell must send a close now (once);
  `peer_closed` and `lost` end it. `closed` is what ``Conn.closed`` reports.
- **outbound bound and slow consumers**: `admits` says whether a frame of ``size``
  bytes may be queued behind ``queued`` bytes. While the shell's transport is below
  its high-water mark (``paused`` False) every frame goes out, so one frame larger
  than ``max_buffer`` still reaches a client that reads; once paused, a frame that
  would take the queue over ``max_buffer`` makes the client a slow consumer (counted;
  the shell closes with 1008 ``"slow consumer"``).
- **max frame size**: `frame_too_big` for a client frame of ``size`` bytes (counted;
  WebSocket 1009, long-poll ``413``).
- **idle timeout**: `touch` on every client byte; `idle_left` is the seconds until the
  connection is idle for ``idle_timeout``; `idle_expired` counts and gives the close.
- **inbound back-pressure, by credits**: `inbound_sent` for every client frame handed
  to the socket process, `inbound_handled` when the socket process has handled one
  (it calls ``Conn.inbound_handled``). More than ``max_inbound`` in flight: the shell
  stops reading (the client fills only its own TCP window); back to half: it reads
  again. No polling of the socket process's mailbox.
"""

from __future__ import annotations

from .base import CLOSE_POLICY, CLOSE_PROTOCOL_ERROR, ConnLimits, TransportStats

PENDING, OPEN, CLOSING, CLOSED = 0, 1, 2, 3
"""The connection's states (``ConnectionPolicy.state``)."""

SLOW_CONSUMER = (CLOSE_POLICY, "slow consumer")
IDLE_TIMEOUT = (CLOSE_PROTOCOL_ERROR, "idle timeout")
"""The close code and reason of each decision (Bandit's and Phoenix's)."""

DEFAULT_MAX_INBOUND = 1_000
"""Client frames in flight to the socket process before reading pauses."""


class ConnectionPolicy:
    """The policy of one connection (module docstring); ``now`` is always given."""

    __slots__ = ("_inbound", "_limits", "_max_inbound", "_reading", "last_seen", "state", "stats")

    def __init__(
        self, limits: ConnLimits, stats: TransportStats, *, max_inbound: int = DEFAULT_MAX_INBOUND, now: float = 0.0
    ) -> None:
        self._limits = limits
        self.stats = stats
        self.state = PENDING
        self.last_seen = now
        self._max_inbound = max_inbound
        self._inbound = 0
        self._reading = True

    # -- state -------------------------------------------------------------------------

    def opened(self, now: float) -> None:
        """The connection is accepted: frames flow from now on."""
        if self.state == PENDING:
            self.state = OPEN
            self.last_seen = now

    @property
    def closed(self) -> bool:
        """True once closing started or the connection is gone (``Conn.closed``)."""
        return self.state >= CLOSING

    def start_close(self) -> bool:
        """Our side closes: True if the shell must send its close frame now (the first
        time, on an open connection); the state is CLOSING afterwards."""
        if self.state != OPEN:
            return False
        self.state = CLOSING
        return True

    def peer_closed(self) -> bool:
        """The client sent its close: True if the shell must answer it (we had not
        started closing); the state is CLOSED afterwards."""
        answer = self.state == OPEN
        self.state = CLOSED
        return answer

    def lost(self) -> None:
        """The connection is gone (TCP closed, the ASGI server said disconnect)."""
        self.state = CLOSED

    # -- outbound ----------------------------------------------------------------------

    def admits(self, size: int, queued: int, paused: bool = True) -> bool:
        """Whether a frame of ``size`` bytes may go behind ``queued`` bytes already
        waiting; False means a slow consumer (counted): close with `SLOW_CONSUMER`."""
        if paused and queued + size > self._limits.max_buffer:
            self.stats.slow_consumer_disconnects += 1
            return False
        return True

    # -- inbound -----------------------------------------------------------------------

    def frame_too_big(self, size: int) -> bool:
        """Whether a client frame of ``size`` bytes is over ``max_frame_size`` (counted)."""
        if size > self._limits.max_frame_size:
            self.stats.frames_too_big += 1
            return True
        return False

    def refused_frame(self) -> None:
        """A parser refused a client frame on its header for its size (counted, as
        `frame_too_big`): the WebSocket parser knows the size before the payload."""
        self.stats.frames_too_big += 1

    def touch(self, now: float) -> None:
        """The client sent something at ``now``."""
        self.last_seen = now

    def idle_left(self, now: float) -> float:
        """Seconds until the connection has been idle for ``idle_timeout`` (<= 0: now).
        While reading is paused for back-pressure the client is not idle, we are: the
        whole timeout is left (and it restarts when reading resumes)."""
        if not self._reading:
            return self._limits.idle_timeout
        return self.last_seen + self._limits.idle_timeout - now

    def idle_expired(self) -> tuple[int, str]:
        """The connection is idle: counted; the close to send (`IDLE_TIMEOUT`)."""
        self.stats.idle_timeouts += 1
        return IDLE_TIMEOUT

    def inbound_sent(self) -> bool:
        """A client frame went to the socket process: True if the shell must stop
        reading now (over ``max_inbound`` in flight)."""
        self._inbound += 1
        if self._reading and self._inbound > self._max_inbound:
            self._reading = False
            return True
        return False

    def inbound_handled(self, now: float) -> bool:
        """The socket process handled a client frame at ``now``: True if the shell must
        read again now (back to half of ``max_inbound`` in flight); the idle timeout
        then counts from ``now``."""
        if self._inbound > 0:
            self._inbound -= 1
        if not self._reading and self._inbound <= self._max_inbound // 2:
            self._reading = True
            self.last_seen = now
            return True
        return False

    @property
    def reading(self) -> bool:
        """False while reading is paused for back-pressure."""
        return self._reading

    @property
    def in_flight(self) -> int:
        """Client frames sent to the socket process and not handled yet."""
        return self._inbound


__all__ = [
    "CLOSED",
    "CLOSING",
    "DEFAULT_MAX_INBOUND",
    "IDLE_TIMEOUT",
    "OPEN",
    "PENDING",
    "SLOW_CONSUMER",
    "ConnectionPolicy",
]
