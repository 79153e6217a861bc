"""The endpoint as an ASGI application, for uvicorn, Starlette and FastAPI users.

``endpoint.asgi()`` returns an `AsgiApp`. Under uvicorn it serves everything the
native server does (WebSocket, long-poll, the endpoint's routes) on uvicorn's event
loop: the alight node attaches to that loop when the app starts (the ASGI lifespan,
or the first request when the app is mounted inside another one, whose lifespan is
not forwarded), and stops with the lifespan's shutdown.

    uvicorn examples.reference:asgi_app          # asgi_app = app.asgi()

    # inside Starlette / FastAPI
    starlette_app.mount("/", app.asgi())

The native server is faster (it frames a broadcast once for all clients); the ASGI
path writes each frame through the ASGI ``send`` of each connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from ..actors import ChildSpec, Node, start_child
from .base import (
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    WEBSOCKET,
    Accepted,
    Conn,
    ConnectInfo,
    ConnLimits,
    Frame,
    Inbound,
    Refused,
    SocketHost,
    TransportClosed,
    TransportStats,
)
from .http import HttpRequest, HttpResponse
from .policy import CLOSED, PENDING, SLOW_CONSUMER, ConnectionPolicy

log = logging.getLogger("alight.transports.asgi")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class AsgiHost(SocketHost, Protocol):
    """What the ASGI adapter needs of the endpoint it serves, beyond a `SocketHost`:
    it starts the endpoint's tree itself and enforces the connection limits."""

    def child_spec(self) -> ChildSpec:
        """The endpoint's supervision tree, without a listener."""

    @property
    def connection_limits(self) -> ConnLimits:
        """The limits every transport enforces."""

    @property
    def transport_stats(self) -> TransportStats:
        """Where transports count (one object for every transport of the endpoint)."""


MAX_BODY = 8 * 1024 * 1024
"""Bytes of an HTTP request body the ASGI app reads (larger: 413)."""


class AsgiApp:
    """An ASGI 3 application serving one endpoint (any `AsgiHost`)."""

    def __init__(self, endpoint: AsgiHost, node: Node | None = None) -> None:
        self.endpoint = endpoint
        self.node = node if node is not None else Node("asgi@127.0.0.1")
        self._own_node = node is None or not node.running
        self._started = False
        self._lock = asyncio.Lock()

    async def startup(self) -> None:
        """Attach the node to the running loop and start the endpoint (idempotent)."""
        async with self._lock:
            if self._started:
                return
            if not self.node.running:
                await self.node.start()
            await self.node.execute(start_child, self.node.root, self.endpoint.child_spec())
            self._started = True

    async def shutdown(self) -> None:
        if self._started and self._own_node:
            await self.node.stop()
        self._started = False

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[AsgiApp]:
        """``async with app.running():`` for a lifespan you manage yourself."""
        await self.startup()
        try:
            yield self
        finally:
            await self.shutdown()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.startup()
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await _AsgiWebSocket(self.endpoint, scope, receive, send).serve()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as error:  # noqa: BLE001 - reported to the server, which stops
                    await send({"type": "lifespan.startup.failed", "message": repr(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytearray()
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                return
            body += event.get("body", b"")
            if len(body) > MAX_BODY:
                await _respond(send, HttpResponse(413, body=b"request body too large"))
                return
            if not event.get("more_body", False):
                break
        request = HttpRequest(
            method=scope["method"],
            path=_route_path(scope),
            query_string=scope.get("query_string", b"").decode("latin-1"),
            headers=_headers(scope),
            body=bytes(body),
            peer=_peer(scope),
        )
        try:
            response = await self.endpoint.node.execute(self.endpoint.handle_http, request)
        except Exception:
            log.exception("error handling %s %s", request.method, request.path)
            response = HttpResponse(500, body=b"internal server error")
        await _respond(send, response)


async def _respond(send: Send, response: HttpResponse) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def _headers(scope: Scope) -> tuple[tuple[str, str], ...]:
    return tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", ()))


def _peer(scope: Scope) -> tuple[str, int] | None:
    client = scope.get("client")
    return (str(client[0]), int(client[1])) if client else None


def _route_path(scope: Scope) -> str:
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


class _AsgiWebSocket(Conn):
    """A WebSocket connection served through ASGI: a `Conn` whose frames are written by
    a writer coroutine owned by the connection's ASGI call. Its decisions (buffer
    bound, idle timeout, frame size, close states, inbound credits) are the
    `ConnectionPolicy`'s, as for the native server's connections."""

    transport = WEBSOCKET

    def __init__(self, endpoint: AsgiHost, scope: Scope, receive: Receive, send: Send) -> None:
        self.endpoint = endpoint
        self.scope = scope
        self.receive = receive
        self.send = send
        self.queue: deque[Frame | tuple[int, str]] = deque()
        self.buffered = 0
        self.wakeup = asyncio.Event()
        self.readable = asyncio.Event()
        """Set while the policy lets the read loop take client frames (credits)."""
        self.readable.set()
        self.policy = ConnectionPolicy(endpoint.connection_limits, endpoint.transport_stats)
        self.pending_close: tuple[int, str] | None = None
        """A close asked for before the connection was accepted, sent once it is."""
        self.socket_pid: Any = None

    # -- Conn -------------------------------------------------------------------------------

    def write(self, frame: Frame) -> None:
        policy = self.policy
        if policy.closed:
            return
        # (Before the accept, frames are queued for the writer, which starts then.)
        # No transport buffer to ask: what is queued here is all of it ("paused").
        if not policy.admits(len(frame.data), self.buffered):
            log.warning("closing a slow consumer (%d bytes queued)", self.buffered)
            self.close(*SLOW_CONSUMER)
            return
        self.queue.append(frame)
        self.buffered += len(frame.data)
        self.wakeup.set()

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        policy = self.policy
        if policy.state == PENDING:
            if self.pending_close is None:
                self.pending_close = (code, reason)
        elif policy.start_close():
            self.queue.append((code, reason))
            self.wakeup.set()

    @property
    def closed(self) -> bool:
        return self.policy.closed or self.pending_close is not None

    def inbound_handled(self) -> None:
        if self.policy.inbound_handled(asyncio.get_running_loop().time()):
            self.readable.set()

    # -- the ASGI side ------------------------------------------------------------------------

    async def serve(self) -> None:
        event = await self.receive()
        if event["type"] != "websocket.connect":
            return
        endpoint = self.endpoint
        mount = endpoint.match_websocket(_route_path(self.scope))
        if mount is None:
            await self.send({"type": "websocket.close", "code": CLOSE_NORMAL})
            return
        loop = asyncio.get_running_loop()
        result: asyncio.Future[Accepted | Refused] = loop.create_future()
        info = ConnectInfo(
            peer=_peer(self.scope),
            uri=_route_path(self.scope),
            headers=_headers(self.scope),
            user_agent=dict(_headers(self.scope)).get("user-agent"),
            transport=WEBSOCKET,
        )
        endpoint.start_socket(
            mount,
            self,
            self.scope.get("query_string", b"").decode("latin-1"),
            info,
            list(self.scope.get("subprotocols", ())),
            lambda outcome: None if result.done() else result.set_result(outcome),
            None,
        )
        outcome = await result
        if isinstance(outcome, Refused):
            # Closing before accepting makes the server answer HTTP 403.
            await self.send({"type": "websocket.close", "code": CLOSE_POLICY})
            return
        self.socket_pid = outcome.pid
        accept: dict[str, Any] = {"type": "websocket.accept"}
        if outcome.subprotocol is not None:
            accept["subprotocol"] = outcome.subprotocol
        self.policy.opened(loop.time())
        await self.send(accept)
        if self.pending_close is not None:
            code, reason = self.pending_close
            self.pending_close = None
            self.close(code, reason)
        async with asyncio.TaskGroup() as group:
            writer = group.create_task(self._write_loop())
            try:
                await self._read_loop()
            finally:
                self.policy.lost()
                self.wakeup.set()
                await writer

    async def _read_loop(self) -> None:
        node = self.endpoint.node
        policy = self.policy
        reason, code = "closed", None
        try:
            while True:
                if not self.readable.is_set():
                    # Too many frames in flight to the socket process: the client
                    # waits, as the native server stops reading.
                    await self.readable.wait()
                try:
                    async with asyncio.timeout(policy.idle_left(asyncio.get_running_loop().time())):
                        event = await self.receive()
                except TimeoutError:
                    close_code, reason = policy.idle_expired()
                    self.close(close_code, reason)
                    return
                policy.touch(asyncio.get_running_loop().time())
                kind = event["type"]
                if kind == "websocket.disconnect":
                    code = event.get("code")
                    return
                if kind != "websocket.receive":
                    continue
                data = event.get("bytes")
                binary = data is not None
                if data is None:
                    data = (event.get("text") or "").encode()
                if policy.frame_too_big(len(data)):
                    self.close(CLOSE_TOO_BIG, "frame too big")
                    reason = "frame too big"
                    return
                node.send(self.socket_pid, Inbound(data, binary))
                if policy.inbound_sent():
                    self.readable.clear()
        finally:
            node.send(self.socket_pid, TransportClosed(reason, code))

    async def _write_loop(self) -> None:
        send = self.send
        queue = self.queue
        while True:
            while queue:
                item = queue.popleft()
                if isinstance(item, Frame):
                    self.buffered -= len(item.data)
                    try:
                        if item.binary:
                            await send({"type": "websocket.send", "bytes": item.data})
                        else:
                            await send({"type": "websocket.send", "text": item.data.decode()})
                    except (OSError, RuntimeError):
                        return
                else:
                    code, reason = item
                    with contextlib.suppress(OSError, RuntimeError):
                        await send({"type": "websocket.close", "code": code, "reason": reason})
                    return
            if self.policy.state == CLOSED and not queue:
                return
            self.wakeup.clear()
            await self.wakeup.wait()


__all__ = ["AsgiApp", "AsgiHost"]
