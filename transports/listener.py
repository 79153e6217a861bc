"""`HttpListener`: the native server (`alight.transports.server`) as a supervised actor.

A `GenServer` that binds the listening socket in ``init`` (so ``start_link`` returns
once it is bound), is the link parent of every request and socket process, and on stop
drains then closes every connection. `listener_port` and `listener_stats` ask a running
listener for its port and counters; `stop_accepting`, `socket_pids` and `close_sockets`
are what a drainer (`alight.channels.drainer`) does before the listener stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ..actors import (
    SHUTDOWN,
    ChildSpec,
    Exit,
    GenServer,
    Pid,
    Reply,
    call,
    current_node,
    is_normal,
    self_pid,
    trap_exit,
)
from ..actors.gen_server import DEFAULT_CALL_TIMEOUT, start_server
from .base import CLOSE_INTERNAL, CLOSE_NORMAL, SocketHost, TransportStats
from .server import HttpProtocol, ListenerState, ServerConfig

log = logging.getLogger("alight.transports.listener")


class HttpListener(GenServer):
    """The server as a supervised actor: listens, owns every connection, and is the
    link parent of every request process and socket process.

    It traps exits: normal exits of its children are ignored, a crashed request
    process is counted (``request_crashes``; its crash report is already logged),
    and a socket process that exits without closing its connection gets it closed
    (1011 after a crash, 1000 otherwise). On stop it stops accepting, closes idle
    HTTP connections (busy ones after their answer), closes WebSockets with
    ``shutdown_close_code`` and sends their socket processes exit ``"shutdown"``,
    waits up to ``shutdown_timeout`` for the connections to go, aborts the rest, and
    closes the server.
    """

    default_shutdown = 30.0

    @classmethod
    async def start_link(  # type: ignore[override] # named settings instead of *args
        cls,
        endpoint: SocketHost,
        host: str = "127.0.0.1",
        port: int = 4000,
        *,
        reuse_port: bool = False,
        backlog: int = 2048,
        config: ServerConfig | None = None,
        stats: TransportStats | None = None,
        name: str | None = None,
    ) -> Pid:
        """Listen on ``host:port`` (0 picks a free port; see `listener_port`) for
        ``endpoint``, linked to the caller; returns once the socket is bound.
        Give ``stats`` to read the counters without a call."""
        settings = (endpoint, host, port, reuse_port, backlog, config or ServerConfig(), stats or TransportStats())
        return await start_server(cls, settings, name, DEFAULT_CALL_TIMEOUT, link=True)

    @classmethod
    def child_spec(  # type: ignore[override] # named settings instead of *args
        cls,
        endpoint: SocketHost,
        host: str = "127.0.0.1",
        port: int = 4000,
        *,
        reuse_port: bool = False,
        backlog: int = 2048,
        config: ServerConfig | None = None,
        stats: TransportStats | None = None,
        id: Any = None,  # noqa: A002 - OTP's field name
        name: str | None = None,
    ) -> ChildSpec:
        """A child spec running `start_link` with these settings (a worker with
        ``shutdown`` = `default_shutdown`, longer than ``config.shutdown_timeout``)."""

        async def start() -> Pid:
            return await cls.start_link(
                endpoint, host, port, reuse_port=reuse_port, backlog=backlog, config=config, stats=stats, name=name
            )

        return ChildSpec(
            id=cls.__qualname__ if id is None else id, start=start, restart="permanent", shutdown=cls.default_shutdown
        )

    async def init(
        self,
        endpoint: SocketHost,
        host: str,
        port: int,
        reuse_port: bool,
        backlog: int,
        config: ServerConfig,
        stats: TransportStats,
    ) -> None:
        trap_exit()
        owner = current_node().lookup(self_pid())
        assert owner is not None
        self.state = ListenerState(endpoint, config, stats, owner)
        loop = asyncio.get_running_loop()
        state = self.state
        self.server = await loop.create_server(
            lambda: HttpProtocol(state), host, port, reuse_port=reuse_port or None, backlog=backlog
        )
        self.port: int = self.server.sockets[0].getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        log.info("listening on http://%s:%d", shown, self.port)

    async def handle_call(self, request: Any, from_: Any) -> Reply:
        if request == "port":
            return Reply(self.port)
        if request == "stats":
            return Reply(self.state.stats)
        if request == "stop_accepting":
            self.server.close()  # new connections go elsewhere (the other nodes on the port)
            # A connection accepted before but upgraded after this (mid-handshake now) is
            # closed as it upgrades (1012), as on the listener's own stop: the drain's
            # batches would not know it.
            self.state.closing = True
            return Reply(None)
        if request == "socket_pids":
            return Reply(list(self.state.sockets))
        if type(request) is tuple and request[0] == "close_sockets":
            return Reply(sum(self._close_socket(pid) for pid in request[1]))
        raise ValueError(f"HttpListener got an unknown call {request!r}")

    def _close_socket(self, pid: Pid) -> bool:
        """Close ``pid``'s WebSocket with ``shutdown_close_code`` and stop its socket
        process (``"shutdown"``); False if it is gone already."""
        ws = self.state.sockets.get(pid)
        if ws is None:
            return False
        ws.close(self.state.config.shutdown_close_code, "restart")
        self.state.node.exit(self_pid(), pid, SHUTDOWN)
        return True

    async def handle_info(self, message: Any) -> None:
        if type(message) is not Exit:
            return
        conn = self.state.sockets.pop(message.pid, None)
        if conn is not None:
            if not conn.closed:
                conn.close(CLOSE_NORMAL if is_normal(message.reason) else CLOSE_INTERNAL)
        elif not is_normal(message.reason):
            self.state.stats.request_crashes += 1

    async def terminate(self, reason: Any) -> None:
        state = self.state
        state.closing = True
        self.server.close()
        for conn in list(state.connections):
            if isinstance(conn, HttpProtocol):
                conn.shutdown()
        for pid in list(state.sockets):
            self._close_socket(pid)
        if state.connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(state.config.shutdown_timeout):
                    await state.drained.wait()
        for conn in list(state.connections):
            conn.abort()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(state.config.shutdown_timeout):
                await self.server.wait_closed()


async def listener_port(listener: Pid | str) -> int:
    """The port ``listener`` is bound to (useful after asking for port 0)."""
    port: int = await call(listener, "port")
    return port


async def listener_stats(listener: Pid | str) -> TransportStats:
    """The live `TransportStats` of ``listener`` (use `TransportStats.snapshot` to keep one)."""
    stats: TransportStats = await call(listener, "stats")
    return stats


async def stop_accepting(listener: Pid | str) -> None:
    """``listener`` closes its listening socket; its connections stay (a drain begins)."""
    await call(listener, "stop_accepting")


async def socket_pids(listener: Pid | str) -> list[Pid]:
    """The socket processes of ``listener``'s open WebSockets."""
    pids: list[Pid] = await call(listener, "socket_pids")
    return pids


async def close_sockets(listener: Pid | str, pids: list[Pid]) -> int:
    """Close the WebSockets of ``pids`` (``shutdown_close_code``: clients reconnect) and
    stop their socket processes; how many were still open."""
    closed: int = await call(listener, ("close_sockets", pids))
    return closed
