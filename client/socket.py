"""`Socket`: one WebSocket connection to a Phoenix (or alight) endpoint, kept alive.

The equivalent of phoenix.js 1.8's ``Socket`` over WebSocket with ``vsn=2.0.0``
(PROTOCOL.md §1, §3.4): a heartbeat every 30 s whose reply must arrive within the next
30 s (else the connection is closed with 1000 "heartbeat timeout"); after every close it
did not ask for, the channels are errored and a reconnect follows after 10, 50, 100, 150,
200, 250, 500, 1000, 2000, then 5000 ms, each randomized by ``jitter``; on (re)open every
errored channel rejoins at once.

One task owned by the socket runs the connection loop (`connect` starts it, `disconnect`
stops and awaits it, so its failure is never lost); per connection it runs a writer task
and a heartbeat task, both awaited before the next attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from . import _frames
from ._backoff import DEFAULT_JITTER, RECONNECT_STEPS, REJOIN_STEPS, backoff
from .channel import Channel, Params

__all__ = ["Socket"]

logger = logging.getLogger("alight.client")

DEFAULT_TIMEOUT = 10.0
"""Seconds a join, push or connection attempt waits (phoenix.js ``timeout``)."""
DEFAULT_HEARTBEAT = 30.0
"""Seconds between heartbeats, and to wait for each reply (phoenix.js ``heartbeatIntervalMs``)."""


class Socket:
    """A client socket: ``Socket("ws://host:4000/socket", params={"token": t})``.

    ``url`` is the socket's endpoint path (``/websocket`` is appended unless present; an
    ``http(s)`` scheme becomes ``ws(s)``); ``params`` are sent in the query string with
    ``vsn``. Only ``vsn="2.0.0"`` is spoken here.

    Use ``async with Socket(...) as socket:`` or `connect` / `disconnect`::

        async with Socket("ws://localhost:4000/socket") as socket:
            channel = socket.channel("room:lobby", {"device": "cli"})
            await channel.join()
            print(await channel.push("ping", {"n": 1}))
    """

    def __init__(
        self,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        vsn: str = "2.0.0",
        timeout: float = DEFAULT_TIMEOUT,
        heartbeat_interval: float = DEFAULT_HEARTBEAT,
        reconnect_steps: Sequence[float] = RECONNECT_STEPS,
        rejoin_steps: Sequence[float] = REJOIN_STEPS,
        jitter: float = DEFAULT_JITTER,
        max_queue: int = 1000,
    ) -> None:
        if vsn != "2.0.0":
            raise ValueError(f"this client speaks vsn 2.0.0 only, not {vsn!r}")
        self.params = dict(params or {})
        self.vsn = vsn
        self.timeout = timeout
        self.heartbeat_interval = heartbeat_interval
        self.reconnect_steps = tuple(reconnect_steps)
        self.rejoin_steps = tuple(rejoin_steps)
        self.jitter = jitter
        self.max_queue = max_queue
        self.invalid_frames = 0
        """Frames from the server that could not be decoded (each is logged and dropped)."""
        self.connections = 0
        """How many times a connection has opened."""
        self._url = url
        self._channels: list[Channel] = []
        self._ref = 0
        self._ws: ClientConnection | None = None
        self._outbox: asyncio.Queue[str | bytes] | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._heartbeat_ref: str | None = None
        self._heartbeat_reply: asyncio.Future[None] | None = None
        self._on_open: list[Callable[[], object]] = []
        self._on_close: list[Callable[[], object]] = []

    # -- public API -----------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """The WebSocket URL actually dialled, with ``params`` and ``vsn`` in the query."""
        parts = urlsplit(self._url)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        path = parts.path.rstrip("/")
        if not path.endswith("/websocket"):
            path += "/websocket"
        query = urlencode({**self.params, "vsn": self.vsn})
        if parts.query:
            query = f"{parts.query}&{query}"
        return urlunsplit((scheme, parts.netloc, path, query, ""))

    @property
    def is_connected(self) -> bool:
        """Whether a connection is open now."""
        return self._connected.is_set()

    async def connect(self) -> None:
        """Start connecting (and reconnecting, for as long as the socket is not
        disconnected); returns at once. Use `wait_connected` to wait for the first open;
        joins and pushes made meanwhile wait in their channels."""
        if self._task is not None and not self._task.done():
            return
        self._closing = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"alight.client {self._url}")

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until a connection is open; `TimeoutError` after ``timeout`` seconds."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def disconnect(self) -> None:
        """Close the connection and stop reconnecting (phoenix.js ``disconnect``).
        Channels stay errored and rejoin if `connect` is called again. Re-raises
        whatever made the connection loop fail, if anything did."""
        self._closing = True
        task, self._task = self._task, None
        if task is None:
            return
        if self._ws is not None:
            await self._ws.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def channel(self, topic: str, params: Params | None = None, *, timeout: float | None = None) -> Channel:
        """A new `Channel` on ``topic``; ``params`` (a dict, or a function called before
        every rejoin) is the join payload. Nothing is sent until `Channel.join`.
        Call it from a coroutine: the channel belongs to the running event loop."""
        channel = Channel(self, topic, params, self.timeout if timeout is None else timeout, self.max_queue)
        self._channels.append(channel)
        return channel

    def on_open(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` every time a connection opens."""
        self._on_open.append(callback)

    def on_close(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` every time a connection closes or fails to open."""
        self._on_close.append(callback)

    async def __aenter__(self) -> Socket:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.disconnect()

    # -- used by channels -----------------------------------------------------------

    def _make_ref(self) -> str:
        self._ref += 1
        return str(self._ref)

    def _send(self, frame: str | bytes) -> None:
        # Channels only send while connected; the outbox belongs to one connection and
        # is dropped with it (what it held is re-sent by rejoin, or times out). It is
        # unbounded on purpose: every frame is a join, leave, heartbeat or a push whose
        # caller awaits it, so it holds at most what callers are waiting on.
        if self._outbox is not None:
            self._outbox.put_nowait(frame)

    def _channels_on(self, topic: str) -> list[Channel]:
        return [channel for channel in self._channels if channel.topic == topic]

    def _remove(self, channel: Channel) -> None:
        with contextlib.suppress(ValueError):
            self._channels.remove(channel)

    # -- the connection loop --------------------------------------------------------

    async def _run(self) -> None:
        tries = 0
        while not self._closing:
            try:
                async with connect(
                    self.endpoint_url, open_timeout=self.timeout, close_timeout=1.0, ping_interval=None, max_size=None
                ) as ws:
                    tries = 0
                    await self._serve(ws)
            except (OSError, TimeoutError, WebSocketException) as exc:
                logger.debug("connection to %s failed or closed: %r", self._url, exc)
            finally:
                self._closed()
            if self._closing:
                return
            tries += 1
            await asyncio.sleep(backoff(tries, self.reconnect_steps, self.jitter))

    async def _serve(self, ws: ClientConnection) -> None:
        outbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self._ws, self._outbox = ws, outbox
        self._connected.set()
        self.connections += 1
        for callback in list(self._on_open):
            callback()
        for channel in list(self._channels):
            channel._on_socket_open()
        loop = asyncio.get_running_loop()
        helpers = [loop.create_task(self._write(ws, outbox)), loop.create_task(self._heartbeat(ws))]
        try:
            async for data in ws:
                self._dispatch(data)
        finally:
            for task in helpers:
                task.cancel()
            results = await asyncio.gather(*helpers, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                raise result

    def _closed(self) -> None:
        self._ws = self._outbox = None
        self._connected.clear()
        if self._heartbeat_reply is not None and not self._heartbeat_reply.done():
            self._heartbeat_reply.cancel()
        for channel in list(self._channels):
            channel._on_socket_error()
        for callback in list(self._on_close):
            callback()

    async def _write(self, ws: ClientConnection, outbox: asyncio.Queue[str | bytes]) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.send(await outbox.get())

    async def _heartbeat(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            self._heartbeat_ref = ref = self._make_ref()
            self._heartbeat_reply = reply = loop.create_future()
            self._send(_frames.encode(None, ref, "phoenix", "heartbeat", {}))
            try:
                await asyncio.wait_for(reply, self.heartbeat_interval)
            except TimeoutError:
                logger.info("heartbeat timeout on %s: closing to reconnect", self._url)
                await ws.close(1000, "heartbeat timeout")
                return

    def _dispatch(self, data: str | bytes) -> None:
        try:
            message = _frames.decode(data)
        except ValueError as exc:
            self.invalid_frames += 1
            logger.error("dropped an undecodable frame from %s: %s", self._url, exc)
            return
        if message.topic == "phoenix":
            reply = self._heartbeat_reply
            if (
                message.ref is not None
                and message.ref == self._heartbeat_ref
                and reply is not None
                and not reply.done()
            ):
                reply.set_result(None)
            return
        for channel in self._channels_on(message.topic):
            channel._handle(message)
