"""The WebSocket transport: a sans-I/O frame codec and `WebSocketConn`.

`FrameParser` (client frames in, events out) and `encode_frame` / `encode_close`
(server frames out) are pure code, tested with bytes in ``tests/unit/test_ws_frames.py``.
`WebSocketConn` is the thin asyncio shell: the `HttpProtocol` of
`alight.transports.server` hands it the TCP transport after the 101 response, and
from then on it is the transport's protocol and the socket layer's `Conn`.

Why our own codec (decided by measurement)
------------------------------------------
Measured with ``uvloop`` on loopback, 2 cores (script: one server, 1,000 client
connections in the same process; two runs, ranges shown): one 91-byte text frame
written to 1,000 connections (best of 50 rounds), and 20,000 masked 91-byte client
frames parsed.

=====================================================  ==================
output, per client                                      cost
=====================================================  ==================
pre-framed once (`Frame.wire`) + ``transport.write``     5.7-5.8 µs
framed per connection (own header) + write               5.9-6.5 µs
websockets ``Protocol.send_text`` + ``data_to_send``     7.1-7.8 µs
picows ``WSTransport.send``                              5.3-5.9 µs
=====================================================  ==================

=====================================================  ==================
input, per frame                                        cost
=====================================================  ==================
websockets ``Protocol.receive_data`` (sans-I/O)          2.5-3.0 µs
own parser (``struct`` + websockets' C ``apply_mask``)   0.48 µs
picows, end to end on loopback                           0.38-0.39 µs
own parser in an ``asyncio.Protocol``, end to end        0.50-0.53 µs
=====================================================  ==================

Output is dominated by the ``send`` system call, which uvloop's ``transport.write``
makes at once: pre-framed bytes and picows are within run-to-run noise of each
other, and framing a broadcast once and writing the same bytes to every subscriber
needs no library. For input, websockets' sans-I/O protocol costs 5-6x our parser
(it builds a `Frame` object and runs a generator per frame); picows is ~25 % faster
end to end but owns the whole connection (its own HTTP upgrade, its own transport),
so it cannot share one listener and one ``httptools`` HTTP/1.1 parser with
long-poll and the app's routes.
So: our own small parser, with the masking done by websockets' C ``apply_mask``
(a maintained, vectorised implementation), and our own framing for output.

Limits and policies
-------------------
- ``max_frame_size`` (default 1 MiB, as websockets): a frame, or a fragmented
  message as a whole, larger than this closes with 1009, on its header (before its
  payload is buffered). A control frame announcing more than 125 bytes, or
  fragmented, closes with 1002 on its header (RFC 6455 §5.5).
- ``max_partial_bytes`` (default 128 MiB): the bytes all connections of a listener
  hold in frames and messages not complete yet (`PartialFrames`). A read that takes
  the total over it closes the connection holding the most with 1013 ("try again
  later"), until the total fits; counted in `TransportStats.partial_frame_closes`.
- ``frame_timeout`` (default 20 s): a frame or fragmented message must be complete
  this long after its first byte arrived, else the connection closes with 1008.
- ``max_buffer`` (default 1 MiB): the bytes queued in user space for a client.
  The transport's high-water mark is ``min(64 KiB, max_buffer)``; once it is
  passed (``pause_writing``), a write that would take the queue above
  ``max_buffer`` disconnects the client as a slow consumer (close 1008,
  ``"slow consumer"``, counted in `TransportStats.slow_consumer_disconnects`). While the
  transport is not paused any frame is accepted, so one frame larger than
  ``max_buffer`` still goes out to a client that reads.
- ``idle_timeout`` (default 60 s, as Bandit): no frame from the client for that
  long closes with 1002.
- ``close_timeout`` (default 5 s): after sending a close frame, how long to wait for
  the client's before the TCP connection is aborted.
- Inbound messages go to the socket process's mailbox (unbounded, as every
  mailbox); when more than ``max_inbound_queue`` (default 1,000) of this client's
  frames are in flight there, reading from the client pauses until the socket
  process has handled half of them (it hands a credit back per frame,
  ``Conn.inbound_handled``), so a client that floods only fills its own TCP window.

Every decision above that is not the frame codec's — the close states, the buffer
bound, the idle timeout, the inbound credits — is the `ConnectionPolicy`'s
(`alight.transports.policy`), shared with the ASGI adapter and long-poll.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websockets.speedups import apply_mask

from .base import (
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN,
    WEBSOCKET,
    Conn,
    ConnLimits,
    Frame,
    Inbound,
    TransportClosed,
)
from .errors import WebSocketProtocolError
from .idle import IdleWheel, idle_resolution
from .policy import CLOSED, CLOSING, OPEN, PENDING, SLOW_CONSUMER, ConnectionPolicy

log = logging.getLogger("alight.transports.websocket")

if TYPE_CHECKING:
    from ..actors import Node, Pid
    from .base import TransportStats
    from .server import ServerConfig

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NO_STATUS = 1005  # a close frame without a code (RFC 6455 §7.1.5); never sent
CLOSE_ABNORMAL = 1006  # the connection dropped without a close frame; never sent
CLOSE_INVALID_DATA = 1007  # text that is not UTF-8

_UNPACK_H = struct.Struct("!H").unpack_from
_UNPACK_Q = struct.Struct("!Q").unpack_from
_PACK_H = struct.Struct("!BBH").pack
_PACK_Q = struct.Struct("!BBQ").pack
# Codes a peer may send (RFC 6455 §7.4): 1000-1003, 1007-1014, and 3000-4999.
_VALID_CLOSE = frozenset((1000, 1001, 1002, 1003, *range(1007, 1015)))


def encode_frame(opcode: int, data: bytes) -> bytes:
    """One unfragmented, unmasked server frame (RFC 6455 §5.2)."""
    n = len(data)
    if n < 126:
        return bytes((0x80 | opcode, n)) + data
    if n < 65536:
        return _PACK_H(0x80 | opcode, 126, n) + data
    return _PACK_Q(0x80 | opcode, 127, n) + data


def encode_close(code: int, reason: str = "") -> bytes:
    """A close frame; ``reason`` is cut to fit a control frame's 125 bytes."""
    payload = struct.pack("!H", code) + reason.encode()[:123]
    return encode_frame(OP_CLOSE, payload)


def parse_close(payload: bytes) -> tuple[int, str]:
    """The ``(code, reason)`` of a client's close frame; `CLOSE_NO_STATUS` if empty.

    Raises `WebSocketProtocolError` for a one-byte payload or a code a peer may not send (1002)
    and for a reason that is not UTF-8 (1007).
    """
    if not payload:
        return CLOSE_NO_STATUS, ""
    if len(payload) == 1:
        raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, "bad close frame")
    code = _UNPACK_H(payload)[0]
    if code not in _VALID_CLOSE and not 3000 <= code <= 4999:
        raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, "bad close code")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise WebSocketProtocolError(CLOSE_INVALID_DATA, "invalid utf-8") from None
    return code, reason


class FrameParser:
    """Client frames in, events out (sans-I/O).

    `feed` takes bytes as they arrive and returns the complete events as
    ``(opcode, payload)`` pairs: `OP_TEXT` / `OP_BINARY` with a whole message
    (fragments reassembled, text checked to be UTF-8), `OP_PING`, `OP_PONG`, and
    `OP_CLOSE` with the raw close payload (see `parse_close`). A protocol violation
    raises `WebSocketProtocolError` with the close code to send (1002 protocol, 1007 bad UTF-8,
    1009 too big); the parser must not be fed again after that.

    Partial input is kept as a list of chunks and joined once enough has arrived,
    so a large frame arriving in many reads is copied once, not once per read.
    """

    __slots__ = ("_chunks", "_fragments", "_fragments_size", "_have", "_max_size", "_message_op", "_need")

    def __init__(self, max_size: int = 1_048_576) -> None:
        self._max_size = max_size
        self._chunks: list[bytes] = []
        self._have = 0
        self._need = 2
        self._message_op = 0  # opcode of a fragmented message in progress, or 0
        self._fragments: list[bytes] = []
        self._fragments_size = 0

    @property
    def buffered(self) -> int:
        """Bytes held for frames and messages not complete yet (what `feed` keeps
        between calls): the part of a frame still arriving plus the fragments of a
        message in progress."""
        return self._have + self._fragments_size

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Parse ``data`` (and what was left over); return the complete events."""
        if self._chunks:
            self._chunks.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            data = b"".join(self._chunks)
            self._chunks = []
        elif len(data) < self._need:
            self._chunks.append(data)
            self._have = len(data)
            return []
        events: list[tuple[int, bytes]] = []
        pos = self._parse(data, events)
        rest = len(data) - pos
        if rest:
            self._chunks.append(data[pos:] if pos else data)
        self._have = rest
        return events

    def _parse(self, buf: bytes, events: list[tuple[int, bytes]]) -> int:
        # Returns how many bytes of ``buf`` were consumed; sets ``_need`` to the
        # length the buffered remainder must reach before parsing can go on.
        end = len(buf)
        pos = 0
        view = memoryview(buf)
        while True:
            if end - pos < 2:
                self._need = 2
                return pos
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            header = 6
            if length == 126:
                header = 8
                if end - pos < 4:
                    self._need = 4
                    return pos
                length = _UNPACK_H(buf, pos + 2)[0]
            elif length == 127:
                header = 14
                if end - pos < 10:
                    self._need = 10
                    return pos
                length = _UNPACK_Q(buf, pos + 2)[0]
            if b0 & 0x70:
                raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, "reserved bits set")
            if not b1 & 0x80:
                raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, "unmasked client frame")
            if b0 & 0x08:
                # A control frame: 125 bytes at most and never fragmented (RFC 6455
                # §5.5), refused on its header, before any of its payload is buffered.
                if length > 125 or not b0 & 0x80:
                    raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, "bad control frame")
            elif length > self._max_size or self._fragments_size + length > self._max_size:
                raise WebSocketProtocolError(CLOSE_TOO_BIG, "frame too big")
            total = header + length
            if end - pos < total:
                self._need = total
                return pos
            mask = buf[pos + header - 4 : pos + header]
            payload = apply_mask(view[pos + header : pos + total], mask)
            pos += total
            self._event(b0 & 0x80, b0 & 0x0F, payload, events)

    def _event(self, fin: int, opcode: int, payload: bytes, events: list[tuple[int, bytes]]) -> None:
        if opcode >= OP_CLOSE:
            if opcode > OP_PONG:
                raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, "unknown opcode")
            if not fin or len(payload) > 125:
                raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, "bad control frame")
            events.append((opcode, payload))
            return
        if opcode == OP_CONT:
            if not self._message_op:
                raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, "unexpected continuation")
            self._fragments_size += len(payload)
            if self._fragments_size > self._max_size:
                raise WebSocketProtocolError(CLOSE_TOO_BIG, "message too big")
            self._fragments.append(payload)
            if not fin:
                return
            opcode = self._message_op
            payload = b"".join(self._fragments)
            self._message_op = 0
            self._fragments = []
            self._fragments_size = 0
        elif opcode > OP_BINARY:
            raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, "unknown opcode")
        elif self._message_op:
            raise WebSocketProtocolError(CLOSE_PROTOCOL_ERROR, "expected a continuation frame")
        elif not fin:
            self._message_op = opcode
            self._fragments = [payload]
            self._fragments_size = len(payload)
            return
        if opcode == OP_TEXT:
            try:
                payload.decode()
            except UnicodeDecodeError:
                raise WebSocketProtocolError(CLOSE_INVALID_DATA, "invalid utf-8") from None
        events.append((opcode, payload))


class PartialFrames:
    """The bytes that the connections of one listener hold in unfinished frames, and
    which to close when they are over ``limit`` (sans-I/O: connections report, the
    caller closes what `hold` returns).

    A connection that stops halfway through a large frame holds that much memory
    until the frame completes; many of them can exhaust a machine (150 connections
    sending 9 MB of a 9.9 MB frame each held 1.3 GB). The largest holder goes first:
    it costs the most, and a client that sends frames whole never holds anything.
    """

    __slots__ = ("holders", "limit", "total")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self.holders: dict[Any, int] = {}

    def hold(self, holder: Any, held: int) -> list[Any]:
        """``holder`` now holds ``held`` bytes (0: none); returns the holders to close,
        largest first, already forgotten, so that the total is within the limit."""
        before = self.holders.pop(holder, 0)
        self.total += held - before
        if held:
            self.holders[holder] = held
        evicted: list[Any] = []
        while self.total > self.limit and self.holders:
            largest = max(self.holders, key=self.holders.__getitem__)
            self.total -= self.holders.pop(largest)
            evicted.append(largest)
        return evicted


class Coalescer:
    """One write per connection per loop turn, whatever the number of frames.

    The first frame a connection gets in a loop turn is written at once (one system
    call, as before: a lone broadcast costs nothing more); the frames that follow it in
    the same turn are held, and at the start of the next turn, once, each connection
    writes what it holds in one ``write``. A burst of k broadcasts thus costs each
    subscriber two system calls instead of k, in the order the frames were written.
    One per listener; a connection made without one has its own.
    """

    __slots__ = ("_flush_scheduled", "_loop", "_touched")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._touched: list[WebSocketConn] = []
        self._flush_scheduled = False

    def touched(self, conn: WebSocketConn) -> None:
        """``conn`` wrote in this turn: it coalesces until the next one."""
        self._touched.append(conn)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        touched, self._touched = self._touched, []
        for conn in touched:
            if conn._batch is _TOUCHED:
                conn._batch = None  # the common case, one frame this turn: nothing held
            else:
                conn._end_turn()


COALESCE_LIMIT = 65_536
"""Bytes a connection holds in one turn at most; past them it writes at once (so a big
burst is weighed against ``max_buffer`` as it goes, not after)."""

_TOUCHED: tuple[bytes, ...] = ()
"""`WebSocketConn._batch` after the turn's first (direct) write: nothing held yet."""

_PENDING, _OPEN, _CLOSING, _CLOSED = PENDING, OPEN, CLOSING, CLOSED


class WebSocketConn(asyncio.Protocol, Conn):
    """One WebSocket connection: the asyncio protocol of its TCP transport after the
    handshake, and the `Conn` the socket layer writes `Frame` objects to.

    Each complete client message goes to the socket process as
    ``Inbound(data, binary)``; when the connection ends for any reason (client
    close, our `close`, protocol error, idle timeout, slow consumer, TCP loss,
    server shutdown) the socket process gets exactly one
    ``TransportClosed(reason, code)``, as soon as the closing starts. ``code`` is
    the close code sent or received (`CLOSE_NO_STATUS` for a close frame without
    one, `CLOSE_ABNORMAL` when TCP dropped without a close frame).

    Created by the server before the socket process runs ``connect`` (state
    pending: writes are held, `close` is remembered); `accept` opens it.
    See the module docstring for the limits.
    """

    transport = WEBSOCKET

    __slots__ = (
        "_batch",
        "_close_timer",
        "_coalescer",
        "_frame_timer",
        "_held",
        "_held_bytes",
        "_idle",
        "_loop",
        "_node",
        "_notified",
        "_on_lost",
        "_parser",
        "_partial",
        "_paused",
        "_pending_close",
        "_pid",
        "_policy",
        "_stats",
        "_tcp",
        "config",
    )

    def __init__(
        self,
        node: Node,
        config: ServerConfig,
        stats: TransportStats,
        partial: PartialFrames | None = None,
        idle: IdleWheel | None = None,
        coalescer: Coalescer | None = None,
    ) -> None:
        self._node = node
        self.config = config
        self._stats = stats
        self._partial = partial if partial is not None else PartialFrames(config.max_partial_bytes)
        self._frame_timer: asyncio.TimerHandle | None = None
        self._loop = node.loop
        self._parser = FrameParser(config.max_frame_size)
        limits = ConnLimits(config.max_frame_size, config.idle_timeout, config.max_buffer)
        self._policy = ConnectionPolicy(limits, stats, max_inbound=config.max_inbound_queue)
        self._tcp: asyncio.Transport | None = None
        self._pid: Pid | None = None
        self._held: list[bytes] = []
        self._pending_close: tuple[int, str] | None = None
        self._notified = False
        self._paused = False
        # The listener's wheel for every connection's idle deadline (else one of its own).
        self._idle = idle if idle is not None else IdleWheel(node.loop, idle_resolution(config.idle_timeout))
        self._close_timer: asyncio.TimerHandle | None = None
        self._coalescer = coalescer if coalescer is not None else Coalescer(node.loop)
        # None: not written in this loop turn; `_TOUCHED`: written once, directly; a
        # list: the frames held since, for one write next turn (`Coalescer`).
        self._batch: list[bytes] | tuple[bytes, ...] | None = None
        self._held_bytes = 0
        self._on_lost: Callable[[WebSocketConn], None] | None = None

    def __repr__(self) -> str:
        state = ("pending", "open", "closing", "closed")[self._policy.state]
        return f"<WebSocketConn {state} pid={self._pid!r}>"

    # -- the Conn API ----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._policy.closed or self._pending_close is not None

    @property
    def pid(self) -> Pid | None:
        """The socket process, once accepted."""
        return self._pid

    def write(self, frame: Frame) -> None:
        """Frame once (cached in ``frame.wire``), then write; see the module docstring."""
        wire = frame.wire
        if wire is None:
            wire = frame.wire = encode_frame(OP_BINARY if frame.binary else OP_TEXT, frame.data)
        state = self._policy.state
        if state == _OPEN:
            batch = self._batch
            if self._paused:
                # The client is behind: each frame is weighed against max_buffer, after
                # what this turn held (no coalescing: the kernel's buffer is full anyway).
                if batch:
                    self._flush_held()
                if not self._send(wire):
                    return
            elif batch is None:
                # The fan-out path: the client keeps up, so the bytes go straight out.
                self._tcp.write(wire)  # type: ignore[union-attr]
                self._batch = _TOUCHED
                self._coalescer.touched(self)
            else:
                if batch is _TOUCHED:
                    self._batch = [wire]  # the second frame of this turn: held (`Coalescer`)
                    self._held_bytes = len(wire)
                else:
                    batch.append(wire)  # type: ignore[union-attr]
                    self._held_bytes += len(wire)
                if self._held_bytes >= COALESCE_LIMIT:
                    self._flush_held()  # a big burst goes out now, through the buffer bound
            stats = self._stats
            stats.frames_out += 1
            stats.bytes_out += len(wire)
        elif state == _PENDING and self._pending_close is None:
            self._held.append(wire)

    def _end_turn(self) -> None:
        """The `Coalescer`'s call, next turn: write what this turn held, in one write."""
        batch, self._batch = self._batch, None
        self._held_bytes = 0
        if batch and self._policy.state == _OPEN and self._tcp is not None:
            data = batch[0] if len(batch) == 1 else b"".join(batch)
            if not self._paused:
                self._tcp.write(data)
            else:
                self._send(data)

    def _flush_held(self) -> None:
        """Write what this turn held now, before a close frame (which must come last)."""
        if self._batch:
            self._end_turn()

    def inbound_handled(self) -> None:
        """A credit back from the socket process: read again once enough are back."""
        if self._policy.inbound_handled(self._loop.time()) and self._policy.state < _CLOSED and self._tcp is not None:
            self._tcp.resume_reading()

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Send a close frame, wait up to ``close_timeout`` for the client's, then
        close TCP. Idempotent; the socket process gets `TransportClosed`."""
        if self._policy.state == _PENDING:
            if self._pending_close is None:
                self._pending_close = (code, reason)
            return
        self._start_close(code, reason, reason or "closed")

    # -- opening, for the server ------------------------------------------------------

    def accept(self, pid: Pid, tcp: asyncio.Transport, extra: bytes, on_lost: Callable[[WebSocketConn], None]) -> None:
        """Take over ``tcp`` (the 101 is already written) for socket process ``pid``;
        ``extra`` is what the client sent after its handshake; ``on_lost(conn)`` is
        called once TCP is closed."""
        self._pid = pid
        self._tcp = tcp
        self._on_lost = on_lost
        self._policy.opened(self._loop.time())
        self._stats.websockets += 1
        high = min(65536, self.config.max_buffer)
        tcp.set_write_buffer_limits(high=high, low=high // 4)
        self._paused = tcp.get_write_buffer_size() > high
        tcp.set_protocol(self)
        self._idle.add(self, self.config.idle_timeout)
        held, self._held = self._held, []
        for wire in held:
            if not self._send(wire):
                break
        if self._pending_close is not None:
            code, reason = self._pending_close
            self._pending_close = None
            self._start_close(code, reason, reason or "closed")
        elif extra:
            self.data_received(extra)
        if self._policy.reading and self._policy.state != _CLOSED:
            tcp.resume_reading()  # the HTTP side paused it while connect ran

    def abort(self) -> None:
        """Drop the TCP connection now (the end of a bounded shutdown)."""
        if self._tcp is not None:
            self._tcp.abort()

    def abandon(self, pid: Pid | None) -> None:
        """The HTTP connection ended before the socket process was accepted: if it
        was (``pid``), tell it at once that the transport is gone."""
        self._policy.lost()
        if pid is not None:
            self._pid = pid
            self._notify("connection lost", CLOSE_ABNORMAL)

    # -- asyncio.Protocol ---------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        policy = self._policy
        policy.last_seen = self._loop.time()  # policy.touch, inlined: every read
        stats = self._stats
        stats.bytes_in += len(data)
        if policy.state >= _CLOSED:
            return
        parser = self._parser
        try:
            events = parser.feed(data)
        except WebSocketProtocolError as error:
            if error.code == CLOSE_TOO_BIG:
                policy.refused_frame()
            self._fail(error.code, error.reason)
            return
        if parser.buffered or self._frame_timer is not None:
            self._partial_changed(parser.buffered)
            if policy.state >= _CLOSED:
                return
        node = self._node
        pid = self._pid
        assert pid is not None
        for opcode, payload in events:
            if opcode <= OP_BINARY:
                if policy.state == _OPEN:
                    stats.frames_in += 1
                    node.send(pid, Inbound(payload, opcode == OP_BINARY))
                    if policy.inbound_sent():
                        # Too many frames in flight to the socket process: the client
                        # fills only its own TCP window until credits come back.
                        assert self._tcp is not None
                        self._tcp.pause_reading()
            elif opcode == OP_PING:
                if policy.state == _OPEN:
                    self._send(encode_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                self._peer_closed(payload)
                return

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._policy.state == _OPEN:
            self._lost_without_close()
        self._notify("connection lost", CLOSE_ABNORMAL)
        self._policy.lost()
        self._release()
        self._idle.discard(self)
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._stats.websockets -= 1
        on_lost, self._on_lost = self._on_lost, None
        if on_lost is not None:
            on_lost(self)

    # -- internals ------------------------------------------------------------------------

    def _lost_without_close(self) -> None:
        """Count a 1006 and say so at the 1st, 10th, 100th, ... (a bounded log: at scale
        clients vanish all the time; the counter is ``abnormal_closes``)."""
        stats = self._stats
        stats.abnormal_closes += 1
        n = stats.abnormal_closes
        if n == 10 ** (len(str(n)) - 1):
            log.info(
                "a WebSocket ended without a close frame (1006; %d so far): the client went away, or a proxy "
                "closed it (behind nginx, proxy_read_timeout must exceed the client's heartbeat, 30 s)",
                n,
            )

    def _fail(self, code: int, reason: str) -> None:
        # Nothing after a bad frame can be trusted: send our close, then close TCP
        # once it is flushed (RFC 6455 §7.1.7), bounded by close_timeout.
        self._start_close(code, reason, reason)
        self._policy.lost()
        self._release()
        assert self._tcp is not None
        self._tcp.close()

    def _partial_changed(self, held: int) -> None:
        """The parser holds ``held`` bytes of unfinished frames (the slow path: only
        frames that span reads get here). A connection is in the budget exactly while
        its frame timer runs."""
        if not held:
            self._release()
            return
        if self._frame_timer is None:
            self._frame_timer = self._loop.call_later(self.config.frame_timeout, self._frame_timed_out)
        for conn in self._partial.hold(self, held):
            self._stats.partial_frame_closes += 1
            conn._fail(CLOSE_TRY_AGAIN, "server busy")

    def _release(self) -> None:
        """Forget this connection's unfinished frames: its frame timer and its share of
        the budget (idempotent)."""
        if self._frame_timer is not None:
            self._frame_timer.cancel()
            self._frame_timer = None
            self._partial.hold(self, 0)

    def _frame_timed_out(self) -> None:
        if self._policy.state == _OPEN:
            self._stats.frame_timeouts += 1
            self._fail(CLOSE_POLICY, "frame timeout")
        else:
            self._release()

    def _send(self, wire: bytes) -> bool:
        tcp = self._tcp
        assert tcp is not None
        if not self._policy.admits(len(wire), tcp.get_write_buffer_size(), self._paused):
            code, reason = SLOW_CONSUMER
            self._start_close(code, reason, reason)
            return False
        tcp.write(wire)
        return True

    def _notify(self, reason: str, code: int | None) -> None:
        if not self._notified and self._pid is not None:
            self._notified = True
            self._node.send(self._pid, TransportClosed(reason, code))

    def _start_close(self, code: int, reason: str, why: str) -> None:
        # Our side starts the closing handshake (RFC 6455 §7.1.2).
        if self._policy.state == _OPEN:
            self._flush_held()
        if not self._policy.start_close():
            return
        self._notify(why, code)
        tcp = self._tcp
        assert tcp is not None
        tcp.write(encode_close(code, reason))
        self._close_timer = self._loop.call_later(self.config.close_timeout, tcp.abort)

    def _peer_closed(self, payload: bytes) -> None:
        tcp = self._tcp
        assert tcp is not None
        try:
            code, reason = parse_close(payload)
        except WebSocketProtocolError as error:
            self._start_close(error.code, error.reason, error.reason)
            code, reason = error.code, error.reason
        if self._policy.state == _OPEN:
            self._flush_held()  # what was written before the client's close goes first
        if self._policy.peer_closed():
            # Echo the client's code, then close TCP: the server closes first (§7.1.1).
            self._notify("closed" if not reason else f"closed: {reason}", code)
            tcp.write(encode_close(code) if code != CLOSE_NO_STATUS else encode_frame(OP_CLOSE, b""))
        tcp.close()
        if self._close_timer is None:
            # A client that stops reading must not keep the socket open for ever.
            self._close_timer = self._loop.call_later(self.config.close_timeout, tcp.abort)

    def idle_check(self) -> float | None:
        """The idle wheel's question (`alight.transports.idle`): close if the client
        has been quiet for ``idle_timeout``, else the seconds it may still be."""
        policy = self._policy
        if policy.state != _OPEN:
            return None
        left = policy.idle_left(self._loop.time())
        if left > 0:
            return left
        code, reason = policy.idle_expired()
        self._start_close(code, reason, reason)
        return None
