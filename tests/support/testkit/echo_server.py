"""An endpoint of the Transport API that echoes (no channels), for the native server's tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from alight.actors import Node, receive, self_pid
from alight.actors.gen_server import stop
from alight.actors.lowlevel import Process
from alight.transports.base import Accepted, Conn, ConnectInfo, Frame, Inbound, Refused, TransportClosed, TransportStats
from alight.transports.http import HttpRequest, HttpResponse
from alight.transports.listener import HttpListener, listener_port
from alight.transports.server import ServerConfig
from testkit import UNIT

TIMEOUT = 5 * UNIT


class EchoEndpoint:
    """Routes: GET /hello, POST /echo, GET /query, GET /crash; 404 otherwise.
    Socket at /socket/websocket: refuses ``token=bad``; echoes every message, and
    understands the texts ``close``, ``info``, ``hold`` and ``flood:<n>:<size>``."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.closed: dict[Any, list[TransportClosed]] = {}
        self.closings: asyncio.Queue[tuple[Any, TransportClosed]] = asyncio.Queue()
        self.holding: asyncio.Queue[Any] = asyncio.Queue()
        """Socket processes that got ``hold`` (they wait for a ``"release"`` message)."""

    def match_websocket(self, path: str) -> object | None:
        return "mount" if path == "/socket/websocket" else None

    async def handle_http(self, request: HttpRequest) -> HttpResponse:
        if request.method == "GET" and request.path == "/hello":
            return HttpResponse.text("hello")
        if request.method == "POST" and request.path == "/echo":
            return HttpResponse(200, (("content-type", "application/octet-stream"),), request.body)
        if request.path == "/query":
            return HttpResponse.text(request.query_string)
        if request.path == "/crash":
            raise RuntimeError("boom")
        return HttpResponse.text("not found", 404)

    def start_socket(
        self,
        mount: object,
        conn: Conn,
        params_query: str,
        connect_info: ConnectInfo,
        subprotocols: list[str],
        on_result: Callable[[Accepted | Refused], None],
        owner: Process | None,
        /,
    ) -> None:
        if "token=bad" in params_query.split("&"):
            on_result(Refused("bad token"))
            return
        self.node.spawn_process(echo_socket, (self, conn, connect_info, subprotocols, on_result), link=owner)


async def echo_socket(
    endpoint: EchoEndpoint,
    conn: Conn,
    info: ConnectInfo,
    subprotocols: list[str],
    on_result: Callable[[Accepted | Refused], None],
) -> None:
    me = self_pid()
    endpoint.closed[me] = []
    on_result(Accepted(me, "phoenix" if "phoenix" in subprotocols else None))
    while True:
        message = await receive()
        if isinstance(message, TransportClosed):
            endpoint.closed[me].append(message)
            endpoint.closings.put_nowait((me, message))
        elif isinstance(message, Inbound):
            if message.data == b"close":
                conn.close(4000, "bye")
            elif message.data == b"hold":
                # Handle nothing more until the test sends "release" to this process.
                endpoint.holding.put_nowait(me)
                await receive(lambda m: m == "release")
            elif message.data == b"info":
                about = {"auth_token": info.auth_token, "peer": info.peer, "uri": info.uri}
                conn.write(Frame(orjson.dumps(about)))
            elif message.data.startswith(b"flood:"):
                _, count, size = message.data.split(b":")
                frame = Frame(b"x" * int(size))
                for _ in range(int(count)):
                    conn.write(frame)
            else:
                conn.write(Frame(message.data, message.binary))
            conn.inbound_handled()  # the credit back, as the socket layer gives it


@contextlib.asynccontextmanager
async def serving(
    endpoint: EchoEndpoint, config: ServerConfig | None = None, stats: TransportStats | None = None
) -> AsyncIterator[tuple[int, Any]]:
    """Run a listener on a free port for the block; yields ``(port, pid)``."""
    pid = await HttpListener.start_link(endpoint, port=0, config=config, stats=stats)
    try:
        yield await listener_port(pid), pid
    finally:
        await stop(pid, timeout=TIMEOUT)
