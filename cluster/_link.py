"""Node-to-node links: one ROUTER in, one DEALER out per peer, one frame per loop turn.

A node binds one ROUTER (a CurveZMQ server, `_auth`) that every peer's DEALER connects
to, and connects one DEALER of its own to each peer's ROUTER: node A talks to node B
on A's DEALER and hears from B on its ROUTER. One DEALER per peer keeps each pair's
messages in order, as Erlang's distribution does.

The sockets are plain (sync) pyzmq sockets driven from the event loop: the ROUTER's FD
is watched with ``loop.add_reader`` and drained with ``NOBLOCK`` until ``EAGAIN``
(ZeroMQ's FD is edge-triggered: a readiness edge is not repeated for frames left
queued). ``zmq.asyncio`` is 3-13x slower. One callback handles at most `RECV_BUDGET`
*messages* (a frame may carry thousands) and then yields to the loop with
``call_soon``: a node draining a backlog keeps running its timers, its processes and
its heartbeats. (A bound in frames was not one: 512 frames of 1,000 broadcasts each
kept a node busy for seconds, its peer heard no heartbeat for 3 s and declared it down,
and everything queued on the link was lost.) `Mesh.caught_up_at` tells the failure
detector how far its view of the peers is current: while frames wait unread, silence
is not evidence of a dead peer.

Outgoing messages are queued per peer and written by one ``call_soon`` callback per
loop turn as ONE frame per peer (`_codec.encode_batch`; a frame carrying many messages
is about ten times faster than a frame each).

Limits and overflow (ZeroMQ drops silently at the high-water mark, so we never let it
reach it unnoticed): the ROUTER's ``RCVHWM`` is `RECV_HWM` frames per peer; when a
reader falls behind, libzmq stops reading that peer's TCP connection (a receiving
socket never drops), TCP pushes back, and the sender's DEALER fills up to ``SNDHWM`` =
`SEND_HWM` *frames* (a frame is a whole batch). A DEALER never drops either: when its
queue is full, ``send`` fails with ``EAGAIN``, the batch stays in our queue and is
retried `RETRY_DELAY` later (backpressure: nothing is lost,
`LinkStatistics.send_retries` counts it). Only the ROUTER would drop silently on
*send*, and it never sends. Our own queue holds at most ``max_pending`` messages per
peer; beyond that new messages are dropped, counted in `LinkStatistics.dropped` and
logged (once per overflow episode). A message that cannot be pickled is dropped,
counted and logged too, and so is what is still queued on a link that is closed (its
peer was declared down).

The DEALER's routing id names the link to the peer's ROUTER: ``name``, ``creation`` and
a random ``session`` that is new for every DEALER, so a receiver can tell a peer's
current link from one it replaced (after a restart, or a pause taken for a failure).

Disconnects: each DEALER has a ZeroMQ socket monitor (an inproc PAIR, read from the loop
like the ROUTER: edge-triggered, drained until ``EAGAIN``). When a connection that had
completed its handshake (CurveZMQ and ZAP included) is lost, ``on_disconnect(link)`` is
called once: the peer's process died (the kernel closed its sockets) or closed its
ROUTER. A connection that never completed its handshake (nobody listening yet, a peer
with another secret) is not reported: ZeroMQ keeps retrying it, as it does after a
reported disconnect. `close_link` closes the monitor with its DEALER.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, cast

import zmq
from zmq.utils.monitor import recv_monitor_message

from ..actors import safe_repr
from ._auth import ZapHandler, configure_client, server_socket
from ._codec import ClusterMessage, Down, Exit, Heartbeat, decode_batch, encode_batch
from ._keys import ClusterKeys
from .address import advertised
from .errors import BatchEncodeError, ClusterFrameError, UnpicklableReason

log = logging.getLogger("alight.cluster")

RECV_BUDGET = 4096
"""Messages handled per read callback (at least one frame); the rest in a later turn."""
RECV_HWM = 1000
"""``RCVHWM`` of the ROUTER, in frames per peer (beyond it: TCP backpressure, no loss)."""
SEND_HWM = 10_000
"""``SNDHWM`` of each DEALER, in frames (batches)."""
FRAME_MESSAGES = 4096
"""At most this many messages go in one frame (a bigger queue makes several)."""
MAX_PENDING = 1_000_000
"""Default bound of the messages queued for one peer before new ones are dropped."""
RETRY_DELAY = 0.002
"""Seconds before retrying a send that hit ``SNDHWM``."""

CONNECT_TIMEOUT = 1.0
"""Seconds a DEALER's TCP connect may take before ZeroMQ abandons it and tries again."""

RECONNECT_INTERVAL = 0.1
"""Seconds between ZeroMQ's reconnect attempts (its default)."""
HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
"""A connection was made and its CurveZMQ handshake failed: with alight's keys, the
peer holds another cluster secret (or is not an alight node)."""
MONITOR_EVENTS = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED | HANDSHAKE_FAILED
"""The socket-monitor events of a DEALER that `Mesh` reads."""

_NOOP = Heartbeat(-1)
"""What replaces an unpicklable message in a batch (a heartbeat is harmless anywhere)."""


class Identity(NamedTuple):
    """Who is at the other end of an incoming link (from the DEALER's routing id)."""

    name: str
    creation: int
    session: str


def encode_identity(name: str, creation: int, session: str) -> bytes:
    return f"{name}\x00{creation}\x00{session}".encode()


def decode_identity(raw: bytes) -> Identity | None:
    """The identity in a routing id, or None if it is not one of ours."""
    try:
        name, creation, session = raw.decode().split("\x00")
        return Identity(name, int(creation), session)
    except ValueError:
        return None


@dataclass(slots=True)
class LinkStatistics:
    """Counters of a `Mesh` (see the module docstring for the overflow policy)."""

    frames_sent: int = 0
    messages_sent: int = 0
    frames_received: int = 0
    messages_received: int = 0
    bad_frames: int = 0
    """Frames that did not decode (version mismatch or a bug: peers are authenticated)."""
    dropped: int = 0
    """Messages dropped: a peer's queue was over ``max_pending``, or unpicklable."""
    send_retries: int = 0
    """Times a DEALER was at its high-water mark (backpressure; nothing lost)."""
    unconfirmed_at_close: int = 0
    """Messages written on links that then closed (a peer declared down, a link replaced)
    that the peer had not acknowledged: they may not have arrived."""
    stray_dropped: int = 0
    """Messages received from a peer that was declared down (on its old link, before
    it reconnects): dropped, as Erlang drops what arrives from a node it disconnected."""
    queued: int = 0
    """Messages waiting in our per-peer queues (at the time of the snapshot)."""
    handshakes_refused: int = 0
    """Connections to our cluster port whose handshake failed: a node with another
    cluster secret, or something that is not an alight node (logged at the 1st, 10th,
    100th, ...; nothing of theirs is read)."""


class Outlink:
    """One outgoing link: a DEALER to a peer's ROUTER and the messages queued for it."""

    __slots__ = (
        "acked",
        "address",
        "auth_refused",
        "closed",
        "connected",
        "monitor",
        "monitor_fd",
        "overflowing",
        "queue",
        "session",
        "socket",
        "written",
    )

    def __init__(self, address: str, session: str, socket: zmq.Socket[Any]) -> None:
        self.address = address
        self.session = session
        self.socket = socket
        self.queue: list[ClusterMessage] = []
        self.closed = False
        self.overflowing = False
        self.monitor: zmq.Socket[Any] | None = None
        """The PAIR socket receiving the DEALER's monitor events."""
        self.monitor_fd = -1
        self.connected = False
        """A connection completed its handshake and was not lost since."""
        self.auth_refused = 0
        """Handshakes that failed since the last one that succeeded: the peer holds
        another cluster secret (or is not an alight node)."""
        self.written = 0
        """Messages written to ZeroMQ on this link."""
        self.acked = 0
        """Of those, how many the peer said had arrived (its last `Heartbeat`)."""

    def __repr__(self) -> str:
        return f"Outlink({self.address!r}, session={self.session!r}, queued={len(self.queue)})"


Handler = Callable[[Identity, list[ClusterMessage]], None]
DisconnectHandler = Callable[[Outlink], None]


class Mesh:
    """The sockets of one node: `open` binds the ROUTER, `connect` makes an `Outlink`,
    `push` queues a message on it, and ``on_batch(identity, messages)`` is called with
    the messages of each frame received, in order. ``on_disconnect(link)`` is called
    when an established connection of ``link`` is lost (see the module docstring)."""

    def __init__(
        self,
        name: str,
        creation: int,
        keys: ClusterKeys,
        on_batch: Handler,
        *,
        max_pending: int = MAX_PENDING,
        on_disconnect: DisconnectHandler | None = None,
    ) -> None:
        self.name = name
        self.creation = creation
        self.keys = keys
        self.max_pending = max_pending
        self._on_batch = on_batch
        self._on_disconnect = on_disconnect
        self._stats = LinkStatistics()
        self._context: zmq.Context[Any] = zmq.Context()
        self._zap: ZapHandler | None = None
        self._router: zmq.Socket[Any] | None = None
        self._router_monitor: zmq.Socket[Any] | None = None
        self._router_monitor_fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._links: set[Outlink] = set()
        self._dirty: list[Outlink] = []
        self._flush_scheduled = False
        self._read_scheduled = False
        self._read_at = 0.0
        self.bound = ""
        """``tcp://host:port`` the ROUTER is bound on (after `open`)."""
        self.address = ""
        """The address peers are told to connect to (after `open`): `bound`, or what
        was advertised (`address.advertised`)."""
        self._fd = -1

    def open(self, loop: asyncio.AbstractEventLoop, host: str, port: int, advertise: str | None = None) -> str:
        """Bind the ROUTER on ``host:port`` (0: any free port); return the address
        peers are told (``advertise``, ``HOST`` or ``HOST:PORT``, or the bound one)."""
        self._loop = loop
        self._zap = ZapHandler(self._context, self.keys)
        self._zap.attach(loop)
        self._router, self.bound = server_socket(self._context, self.keys, host=host, port=port)
        self.address = advertised(host, int(self.bound.rsplit(":", 1)[1]), advertise)
        self._router.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self._router.rcvhwm = RECV_HWM
        self._fd = cast(int, self._router.getsockopt(zmq.FD))
        loop.add_reader(self._fd, self._on_readable)
        self._schedule_read()  # edge-triggered: catch anything already queued
        self._router_monitor = self._router.get_monitor_socket(HANDSHAKE_FAILED)
        self._router_monitor.linger = 0
        self._router_monitor_fd = cast(int, self._router_monitor.getsockopt(zmq.FD))
        loop.add_reader(self._router_monitor_fd, self._on_router_monitor)
        loop.call_soon(self._on_router_monitor)
        return self.address

    def _on_router_monitor(self) -> None:
        monitor = self._router_monitor
        while monitor is not None:
            try:
                recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            stats = self._stats
            stats.handshakes_refused += 1
            n = stats.handshakes_refused
            if n == 10 ** (len(str(n)) - 1):  # the 1st, 10th, 100th, ...: bounded
                log.warning(
                    "cluster: refused a handshake on %s (%d so far): a node with another cluster secret, or not "
                    "an alight node (check that ALIGHT_CLUSTER_SECRET is the same on every node)",
                    self.bound,
                    n,
                )

    def connect(self, address: str) -> Outlink:
        """A new outgoing link (new session) to the ROUTER at ``address``."""
        session = os.urandom(6).hex()
        socket: zmq.Socket[Any] = self._context.socket(zmq.DEALER)
        socket.linger = 0
        socket.sndhwm = SEND_HWM
        # A connect that hangs (SYNs lost in a partition) is abandoned and retried every
        # CONNECT_TIMEOUT: the kernel's SYN backoff (1, 3, 7, 15 s) would otherwise keep
        # a healed link down for up to 8 s after the heal.
        socket.setsockopt(zmq.CONNECT_TIMEOUT, int(CONNECT_TIMEOUT * 1000))
        socket.setsockopt(zmq.RECONNECT_IVL, int(RECONNECT_INTERVAL * 1000))
        socket.routing_id = encode_identity(self.name, self.creation, session)
        configure_client(socket, self.keys)
        link = Outlink(address, session, socket)
        if self._loop is not None:  # before connecting: no event is missed
            monitor = socket.get_monitor_socket(MONITOR_EVENTS)
            monitor.linger = 0
            link.monitor = monitor
            link.monitor_fd = cast(int, monitor.getsockopt(zmq.FD))
            self._loop.add_reader(link.monitor_fd, self._on_monitor, link)
            self._loop.call_soon(self._on_monitor, link)  # edge-triggered: catch any already queued
        socket.connect(address)
        self._links.add(link)
        return link

    def _on_monitor(self, link: Outlink) -> None:
        monitor = link.monitor
        while monitor is not None and not link.closed:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)["event"]
            except zmq.Again:
                return
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                link.connected = True
                link.auth_refused = 0
            elif event & HANDSHAKE_FAILED:
                link.auth_refused += 1
            elif event == zmq.EVENT_DISCONNECTED and link.connected:
                link.connected = False
                if self._on_disconnect is not None:
                    try:
                        self._on_disconnect(link)  # may close the link
                    except Exception:  # boundary: as for a frame
                        log.exception("cluster: error handling a disconnect from %s", link.address)

    def _close_monitor(self, link: Outlink) -> None:
        monitor = link.monitor
        if monitor is None:
            return
        link.monitor = None
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(link.monitor_fd)
        link.socket.disable_monitor()
        monitor.close(linger=0)

    def close_link(self, link: Outlink) -> None:
        """Close ``link`` now; what is still queued on it is discarded."""
        if link.closed:
            return
        link.closed = True
        # Written to ZeroMQ but not acknowledged: a closed DEALER (linger 0) and its TCP
        # connection discard what they still hold. Acknowledgements come with the
        # peer's heartbeats, so this may count some that did arrive, never fewer.
        self._stats.unconfirmed_at_close += link.written - link.acked
        if link.queue:
            self._stats.dropped += len(link.queue)
            log.warning("cluster: link to %s closed: dropped %d queued messages", link.address, len(link.queue))
        link.queue = []
        self._links.discard(link)
        self._close_monitor(link)
        link.socket.close(linger=0)

    def push(self, link: Outlink, message: ClusterMessage) -> None:
        """Queue ``message`` on ``link``; it leaves in this loop turn's frame."""
        queue = link.queue
        if len(queue) >= self.max_pending or link.closed:
            self._drop(link)
            return
        queue.append(message)
        if len(queue) == 1:
            self._dirty.append(link)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                assert self._loop is not None
                self._loop.call_soon(self.flush)

    def _drop(self, link: Outlink) -> None:
        self._stats.dropped += 1
        if not link.closed and not link.overflowing:
            link.overflowing = True
            log.warning("cluster: queue to %s is full (%d messages): dropping", link.address, self.max_pending)

    def flush(self) -> None:
        """Write every non-empty queue as frames (called once per loop turn)."""
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        blocked = []
        for link in dirty:
            if not link.closed and not self._flush_link(link):
                blocked.append(link)
        if blocked:
            self._dirty.extend(blocked)
            self._stats.send_retries += len(blocked)
            if not self._flush_scheduled and self._loop is not None:
                self._flush_scheduled = True
                self._loop.call_later(RETRY_DELAY, self.flush)

    def _flush_link(self, link: Outlink) -> bool:
        # False: the DEALER is at its high-water mark; the rest stays queued, in order.
        queue = link.queue
        while queue:
            batch = queue[:FRAME_MESSAGES]
            frame = self._encode(batch)
            try:
                link.socket.send(frame, zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return False
            del queue[: len(batch)]
            link.written += len(batch)
            self._stats.frames_sent += 1
            self._stats.messages_sent += len(batch)
        link.overflowing = False
        return True

    def _encode(self, batch: list[ClusterMessage]) -> bytes:
        # ``batch`` may be shortened (the caller dequeues only what it holds after).
        while True:
            try:
                return encode_batch(batch)
            except BatchEncodeError as error:
                if error.index is None:  # the frame would be over the bound: halve it
                    del batch[len(batch) // 2 :]
                    continue
                batch[error.index] = self._unsendable(batch[error.index], error)

    def _unsendable(self, message: ClusterMessage, error: BatchEncodeError) -> ClusterMessage:
        """What to send in place of ``message``, which cannot be pickled: an exit
        signal or a monitor's `Down` still goes, with an `UnpicklableReason` (the remote
        side must learn that the process ended); anything else is dropped and counted."""
        if isinstance(message, Exit | Down) and not isinstance(message.reason, UnpicklableReason):
            stand_in = UnpicklableReason(safe_repr(message.reason))
            log.warning("cluster: an exit reason cannot be pickled (%s); sent as %r", error, stand_in)
            return replace(message, reason=stand_in)
        log.error("cluster: dropped a message that cannot be sent %s: %s", safe_repr(message), error)
        self._stats.dropped += 1
        return _NOOP

    def _schedule_read(self) -> None:
        if not self._read_scheduled and self._loop is not None:
            self._read_scheduled = True
            self._loop.call_soon(self._on_readable)

    def _on_readable(self) -> None:
        self._read_scheduled = False
        router = self._router
        if router is None or router.closed:
            return
        assert self._loop is not None
        self._read_at = self._loop.time()
        budget = RECV_BUDGET
        while budget > 0:
            try:
                identity_raw, frame = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError:  # not [identity, frame]: not one of our DEALERs
                self._stats.bad_frames += 1
                continue
            budget -= self._receive(identity_raw, frame)
        self._schedule_read()  # more may be queued: no new edge will come

    def caught_up_at(self) -> float:
        """The loop time up to which every received frame has been handled: now when
        nothing waits unread, else when the last read callback ran (a node that was
        too busy to read must not take its peers' silence for their death)."""
        assert self._loop is not None
        router = self._router
        if router is None or router.closed or not cast(int, router.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            return self._loop.time()
        self._schedule_read()  # reading EVENTS may consume the FD's edge
        return self._read_at

    def _receive(self, identity_raw: bytes, frame: bytes) -> int:
        # The number of messages handled (1 for a bad frame: it cost a read).
        identity = decode_identity(identity_raw)
        try:
            if identity is None:
                raise ClusterFrameError(f"unknown routing id {identity_raw!r}")
            messages = decode_batch(frame)
        except ClusterFrameError as error:
            self._stats.bad_frames += 1
            log.error("cluster: dropped a frame from %r: %s", identity_raw, error)
            return 1
        self._stats.frames_received += 1
        self._stats.messages_received += len(messages)
        try:
            self._on_batch(identity, messages)
        except Exception:  # boundary: a bug must not stop the reading of later frames
            log.exception("cluster: error handling a frame from %s", identity.name)
        return max(1, len(messages))

    def acknowledged(self, link: Outlink, session: str, received: int) -> None:
        """The peer of ``link`` says ``received`` messages of DEALER session ``session``
        have arrived (ignored for another session: a link this one replaced)."""
        if session == link.session and received > link.acked:
            link.acked = received

    def count_stray(self, messages: int) -> None:
        """``messages`` arrived on a link that is not up, and were dropped."""
        self._stats.stray_dropped += messages

    def statistics(self) -> LinkStatistics:
        """A snapshot of the counters."""
        return replace(self._stats, queued=sum(len(link.queue) for link in self._links))

    def close(self) -> None:
        """Flush what is queued (best effort), then close every socket."""
        self.flush()
        for link in list(self._links):
            self.close_link(link)
        if self._router is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._fd)
                if self._router_monitor is not None:
                    self._loop.remove_reader(self._router_monitor_fd)
            if self._router_monitor is not None:
                self._router.disable_monitor()
                self._router_monitor.close(linger=0)
                self._router_monitor = None
            self._router.close(linger=0)
            self._router = None
        if self._zap is not None:
            self._zap.close()
            self._zap = None
        self._context.term()
