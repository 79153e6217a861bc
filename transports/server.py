"""The native HTTP/1.1 + WebSocket server that runs inside a node, on its loop.

`alight.transports.listener.HttpListener` is the supervised actor that owns the
asyncio server. Each TCP connection is an `HttpProtocol`, which parses requests with ``httptools``
and talks to the endpoint through `SocketHost`:

- a plain request (long-poll, the app's routes, 404: the endpoint decides) runs
  ``endpoint.handle_http(request)`` in a short-lived process linked to the listener,
  so a crash becomes a 500 plus a crash report, never a lost task;
- a WebSocket upgrade on a path the endpoint mounts a socket at
  (``endpoint.match_websocket(path)``) is validated (else 400), then
  ``endpoint.start_socket(...)`` spawns the socket process, which runs ``connect``
  and answers `Accepted` (101, and the connection becomes a `WebSocketConn`) or
  `Refused` (403 with an empty body, as Phoenix).

Keep-alive and pipelining are supported; pipelined requests are handled one at a
time, in order. Every limit is in `ServerConfig`; counters are in `TransportStats`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

import httptools

from ..actors import (
    SHUTDOWN,
    Pid,
)
from .base import CLOSE_RESTART, WEBSOCKET, Accepted, ConnectInfo, Refused, SocketHost, TransportStats
from .handshake import auth_token, handshake_response, header_tokens, websocket_key
from .http import HttpRequest, HttpResponse, reason_phrase
from .idle import IdleWheel, idle_resolution
from .websocket import Coalescer, PartialFrames, WebSocketConn

if TYPE_CHECKING:
    from ..actors.lowlevel import Process

log = logging.getLogger("alight.transports.server")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Limits and timeouts of the server (seconds, bytes).

    - ``max_header_size``: request line + headers; over it: 431 (414 for the URL alone).
    - ``max_body_size``: request body (Plug's 8 MB default); over it: 413.
    - ``max_pipelined``: parsed requests queued behind the one being handled;
      reading pauses at this many.
    - ``keep_alive_timeout``: an idle HTTP connection is closed after this.
    - ``header_timeout``: a request's line and headers must have arrived this long
      after its first byte (nginx's ``client_header_timeout``), and ``body_timeout``:
      its body this long after its headers; else 408 and the connection closes
      (a client trickling a byte at a time, slowloris, holds nothing for long).
    - ``max_connections_per_address``: HTTP connections (not yet WebSockets) open at
      once from one client address; more are closed on accept and counted in
      `TransportStats.refused_per_address` (None: no bound). Behind a reverse proxy
      every client has the proxy's address: raise it to the proxy's concurrency
      (each long-poll client holds one request open).
    - ``connect_timeout``: how long the socket process may take to answer
      ``on_result``; then 503 and the connection closes.
    - ``max_frame_size``, ``max_partial_bytes``, ``frame_timeout``, ``max_buffer``,
      ``idle_timeout``, ``close_timeout``, ``max_inbound_queue``: the WebSocket limits
      (`alight.transports.websocket`).
    - ``shutdown_timeout``: how long shutdown waits for connections to close;
      ``shutdown_close_code``: the close code WebSockets get then (1012, as
      Phoenix's drain).
    """

    max_header_size: int = 65_536
    max_body_size: int = 8_000_000
    max_pipelined: int = 16
    keep_alive_timeout: float = 15.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections_per_address: int | None = 256
    connect_timeout: float = 10.0
    max_frame_size: int = 1_048_576
    max_partial_bytes: int = 134_217_728
    frame_timeout: float = 20.0
    max_buffer: int = 1_048_576
    idle_timeout: float = 60.0
    close_timeout: float = 5.0
    max_inbound_queue: int = 1_000
    shutdown_timeout: float = 5.0
    shutdown_close_code: int = CLOSE_RESTART


class ListenerState:
    """What a listener and its connections share: the endpoint, limits, counters, the
    open connections and the socket processes (no I/O of its own)."""

    def __init__(self, endpoint: SocketHost, config: ServerConfig, stats: TransportStats, owner: Process) -> None:
        self.endpoint = endpoint
        self.node = endpoint.node
        self.config = config
        self.stats = stats
        self.owner = owner
        self.connections: set[HttpProtocol | WebSocketConn] = set()
        self.sockets: dict[Pid, WebSocketConn] = {}
        self.partial = PartialFrames(config.max_partial_bytes)
        self.idle = IdleWheel(self.node.loop, idle_resolution(config.idle_timeout))
        self.coalescer = Coalescer(self.node.loop)
        self.per_address: dict[str, int] = {}
        """HTTP connections (not yet WebSockets) open now, by client address."""
        self.closing = False
        self.drained = asyncio.Event()

    def lost(self, conn: HttpProtocol | WebSocketConn) -> None:
        self.connections.discard(conn)
        self.stats.connections -= 1
        if self.closing and not self.connections:
            self.drained.set()


@dataclass(slots=True)
class _Item:
    """A parsed request waiting for its turn, or a parse error (``error`` status)."""

    request: HttpRequest | None
    target: str = ""
    keep_alive: bool = False
    error: int = 0


def _encode_response(response: HttpResponse, keep_alive: bool, head: bool) -> bytes:
    status = response.status
    lines = [f"HTTP/1.1 {status} {reason_phrase(status)}"]
    for name, value in response.headers:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} contains a line break")
        if name.lower() != "content-length":
            lines.append(f"{name}: {value}")
    lines.append(f"content-length: {len(response.body)}")
    if not keep_alive:
        lines.append("connection: close")
    lines.append("\r\n")
    head_bytes = "\r\n".join(lines).encode("latin-1")
    return head_bytes if head else head_bytes + response.body


async def _serve_request(protocol: HttpProtocol, endpoint: SocketHost, item: _Item) -> None:
    # The body of a per-request process. The finally answers whatever happens
    # (a crash or an exit signal gives a 500); the crash itself still propagates,
    # so the process exits with it and a crash report is logged.
    request = item.request
    assert request is not None
    response: Any = None
    ok = False
    try:
        response = await endpoint.handle_http(request)
        if not isinstance(response, HttpResponse):
            raise TypeError(f"handle_http must return an HttpResponse, not {response!r}")
        ok = True
    finally:
        protocol.respond(response if ok else HttpResponse.empty(500), item.keep_alive, request.method == "HEAD")


class HttpProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection (until it becomes a WebSocket). See the module docstring."""

    def __init__(self, server: ListenerState) -> None:
        self._server = server
        self._loop = server.node.loop
        self._tcp: asyncio.Transport | None = None
        self._peer: tuple[str, int] | None = None
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._header_size = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._limit = 0
        self._queue: deque[_Item] = deque()
        self._busy = False
        self._paused = False
        self._leftover = b""
        self._ws: WebSocketConn | None = None
        self._last_seen = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        """When the part of a request now arriving (its head, then its body) must be in."""
        self._address: str | None = None
        """The client address counted in ``per_address`` while this is an HTTP connection."""

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._server
        # uvloop's TCPTransport implements asyncio.Transport without subclassing it.
        self._tcp = transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._peer = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        server.connections.add(self)
        server.stats.connections += 1
        server.stats.connections_total += 1
        if server.closing:
            transport.close()
            return
        limit = server.config.max_connections_per_address
        if self._peer is not None:
            address = self._peer[0]
            count = server.per_address.get(address, 0)
            if limit is not None and count >= limit:
                server.stats.refused_per_address += 1
                transport.abort()
                return
            server.per_address[address] = count + 1
            self._address = address
        self._timer = self._loop.call_later(server.config.keep_alive_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        self._last_seen = self._loop.time()
        self._server.stats.bytes_in += len(data)
        parser = self._parser
        if parser is None:
            # After an upgrade request: bytes the WebSocket will parse, bounded.
            self._leftover += data
            if len(self._leftover) > self._server.config.max_header_size:
                self._pause()
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._leftover = data[upgrade.args[0] :]
            self._parser = None
            if self._queue:
                self._queue[-1].keep_alive = False
        except httptools.HttpParserCallbackError:
            self._fail(self._limit or 400)
        except httptools.HttpParserError:
            self._fail(400)
        self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self._tcp = None
        self._release_address()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn, self._ws = self._ws, None
        if conn is not None:
            conn.abandon(None)
        self._server.lost(self)

    # -- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._header_size = 0
        self._body = []
        self._body_size = 0
        self._arm(self._server.config.header_timeout)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_size += len(url)
        if self._header_size > self._server.config.max_header_size:
            self._limit = 414
            raise ValueError("URL too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_size += len(name) + len(value) + 4
        if self._header_size > self._server.config.max_header_size:
            self._limit = 431
            raise ValueError("headers too large")
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        config = self._server.config
        self._arm(config.body_timeout)
        for name, value in self._headers:
            if name == "content-length" and value.isdigit() and int(value) > config.max_body_size:
                self._limit = 413
                raise ValueError("body too large")
        tcp = self._tcp
        expect = [v for k, v in self._headers if k == "expect"]
        if expect and expect[-1].lower() == "100-continue" and tcp is not None and not self._queue and not self._busy:
            tcp.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._server.config.max_body_size:
            self._limit = 413
            raise ValueError("body too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._deadline = None
        parser = self._parser
        assert parser is not None
        target = self._url.decode("latin-1")
        url = httptools.parse_url(self._url)
        request = HttpRequest(
            method=parser.get_method().decode("ascii"),
            path=unquote(url.path.decode("latin-1")) if url.path else "/",
            query_string=url.query.decode("latin-1") if url.query else "",
            headers=tuple(self._headers),
            body=b"".join(self._body),
            peer=self._peer,
        )
        self._queue.append(_Item(request, target, parser.should_keep_alive()))
        if len(self._queue) >= self._server.config.max_pipelined:
            self._pause()

    # -- handling ------------------------------------------------------------------------

    def respond(self, response: HttpResponse, keep_alive: bool, head: bool = False) -> None:
        """Write the answer to the request being handled; then handle the next one."""
        tcp = self._tcp
        if tcp is None:
            return  # the client went away: the answer is dropped
        server = self._server
        keep_alive = keep_alive and not server.closing
        try:
            data = _encode_response(response, keep_alive, head)
        except ValueError:
            log.exception("bad response from the endpoint")
            data, keep_alive = _encode_response(HttpResponse.empty(500), False, head), False
        self._busy = False
        server.stats.requests += 1
        server.stats.bytes_out += len(data)
        tcp.write(data)
        if not keep_alive:
            self._close()
            return
        self._pump()

    def shutdown(self) -> None:
        """The listener stops: close now if idle, else after the current answer."""
        if self._tcp is not None and not self._busy:
            self._close()
        self._queue.clear()

    def abort(self) -> None:
        """Drop the connection now (the end of a bounded shutdown)."""
        if self._tcp is not None:
            self._tcp.abort()

    def _fail(self, status: int) -> None:
        self._server.stats.bad_requests += 1
        self._queue.append(_Item(None, error=status))
        self._parser = None

    def _pause(self) -> None:
        if not self._paused and self._tcp is not None:
            self._paused = True
            self._tcp.pause_reading()

    def _close(self) -> None:
        if self._tcp is not None:
            self._tcp.close()

    def _pump(self) -> None:
        if self._busy or self._tcp is None:
            return
        server = self._server
        if self._queue:
            item = self._queue.popleft()
            request = item.request
            if request is None:
                self._busy = True
                self.respond(HttpResponse.empty(item.error), False)
                return
            mount = server.endpoint.match_websocket(request.path)
            self._busy = True
            if mount is not None:
                self._upgrade(item, request, mount)
                return
            server.node.spawn_process(_serve_request, (self, server.endpoint, item), link=server.owner)
            return
        if self._paused and self._parser is not None:
            self._paused = False
            self._tcp.resume_reading()

    def _upgrade(self, item: _Item, request: HttpRequest, mount: object) -> None:
        key = websocket_key(request)
        if key is None:
            # Phoenix answers any other request on the WebSocket path with an empty 400.
            self._server.stats.bad_requests += 1
            self.respond(HttpResponse.empty(400), False)
            return
        server = self._server
        self._pause()  # frames sent before the 101 wait in the kernel until we know
        offered = header_tokens(request, "sec-websocket-protocol")
        info = ConnectInfo(
            peer=self._peer,
            uri=f"http://{request.header('host') or ''}{item.target}",
            headers=request.headers,
            user_agent=request.header("user-agent"),
            auth_token=auth_token(offered),
            transport=WEBSOCKET,
        )
        conn = WebSocketConn(server.node, server.config, server.stats, server.partial, server.idle, server.coalescer)
        self._ws = conn
        timer = self._loop.call_later(server.config.connect_timeout, self._connect_timed_out, conn)

        def on_result(result: Accepted | Refused) -> None:
            timer.cancel()
            self._connected(conn, key, bool(offered), result)

        try:
            server.endpoint.start_socket(mount, conn, request.query_string, info, offered, on_result, server.owner)
        except Exception:
            log.exception("start_socket failed for %s", request.path)
            timer.cancel()
            self._ws = None
            self.respond(HttpResponse.empty(500), False)

    def _connected(self, conn: WebSocketConn, key: str, offered: bool, result: Accepted | Refused) -> None:
        if self._ws is not conn:
            # Timed out, or the client left while connect ran: the socket learns it now.
            if isinstance(result, Accepted):
                conn.abandon(result.pid)
            return
        self._ws = None
        tcp = self._tcp
        assert tcp is not None
        if isinstance(result, Refused):
            self.respond(HttpResponse.empty(result.status), False)
            return
        if not isinstance(result, Accepted):
            log.error("start_socket answered %r, expected Accepted or Refused", result)
            self.respond(HttpResponse.empty(500), False)
            return
        server = self._server
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        handshake = handshake_response(key, result.subprotocol if offered else None)
        server.stats.bytes_out += len(handshake)
        tcp.write(handshake)
        # The connection is the WebSocket's from now on; this object goes away.
        self._tcp = None
        self._release_address()
        server.connections.discard(self)
        server.connections.add(conn)
        server.sockets[result.pid] = conn
        # The listener must hear of the socket's exit (it closes a forgotten conn).
        server.node.link(server.owner, result.pid)
        leftover, self._leftover = self._leftover, b""
        conn.accept(result.pid, tcp, leftover, server.lost)
        if server.closing:
            conn.close(server.config.shutdown_close_code, "restart")
            server.node.exit(server.owner.pid, result.pid, SHUTDOWN)

    def _connect_timed_out(self, conn: WebSocketConn) -> None:
        if self._ws is conn:
            log.warning("socket connect did not answer within %s s", self._server.config.connect_timeout)
            self._ws = None
            conn.abandon(None)
            self.respond(HttpResponse.empty(503), False)

    def _release_address(self) -> None:
        address, self._address = self._address, None
        if address is not None:
            per_address = self._server.per_address
            count = per_address[address] - 1
            if count:
                per_address[address] = count
            else:
                del per_address[address]

    def _arm(self, timeout: float) -> None:
        """The request part that starts now must be in within ``timeout``; the timer
        fires by then (it is moved earlier if it would fire later)."""
        now = self._loop.time()
        self._deadline = deadline = now + timeout
        timer = self._timer
        if timer is not None and timer.when() > deadline:
            timer.cancel()
            self._timer = self._loop.call_later(timeout, self._check_idle)

    def _check_idle(self) -> None:
        # Keep-alive (no byte for keep_alive_timeout) and the request deadlines: a
        # byte keeps a connection alive, but not a request that never completes.
        self._timer = None
        if self._tcp is None:
            return
        now = self._loop.time()
        timeout = self._server.config.keep_alive_timeout
        left = self._last_seen + timeout - now
        deadline = self._deadline
        if self._busy or self._queue or self._paused:
            # We owe an answer (or stopped reading): the client is not the slow one.
            left = timeout
        elif deadline is not None:
            if deadline <= now:
                self._server.stats.request_timeouts += 1
                self._deadline = None
                self._fail(408)
                self._pump()
                return
            left = min(left, deadline - now)
        if left > 0:
            self._timer = self._loop.call_later(left, self._check_idle)
        else:
            self._close()
