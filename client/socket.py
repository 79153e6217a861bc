"""`Socket`: one connection to a Phoenix (or alight) endpoint, kept alive.

The equivalent of phoenix.js 1.8's ``Socket`` (docs/protocol.md §1, §3.4), over WebSocket or
long-poll (§5), with ``vsn=2.0.0`` or ``1.0.0``. Over WebSocket: a heartbeat every 30 s
whose reply must arrive within the next 30 s (else the connection is closed with 1000
"heartbeat timeout"). Over long-poll: one GET outstanding at a time with the session
token, sends POSTed as ndjson batches of at most 100 frames with one POST in flight, no
heartbeats; a lost session (410 once a token is held), a refusal (403), an unparseable
answer or a POST not answered ``200`` closes the connection. After every close it
did not ask for, the channels are errored and a reconnect follows after 10, 50, 100, 150,
200, 250, 500, 1000, 2000, then 5000 ms, each randomized by ``jitter``; on (re)open every
errored channel rejoins at once.

One task owned by the socket runs the connection loop (`connect` starts it, `disconnect`
stops and awaits it, so its failure is never lost); per connection it runs a writer task
and a heartbeat task, both awaited before the next attempt.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Final, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from . import _frames
from ._backoff import DEFAULT_JITTER, RECONNECT_STEPS, REJOIN_STEPS, backoff
from ._http import HttpConnection
from .channel import Channel, Params
from .errors import ConnectFailed
from .message import Message

__all__ = ["LongPoll", "Socket", "Transport", "WebSocket"]

logger = logging.getLogger("alight.client")

DEFAULT_TIMEOUT = 10.0
"""Seconds a join, push or connection attempt waits (phoenix.js ``timeout``)."""
DEFAULT_HEARTBEAT = 30.0
"""Seconds between heartbeats, and to wait for each reply (phoenix.js ``heartbeatIntervalMs``)."""
DEFAULT_LONGPOLL_TIMEOUT = 20.0
"""Seconds each long-poll request may take (phoenix.js ``longpollerTimeout``)."""
MAX_BATCH: Final = 100
"""Frames in one long-poll POST at most (the server reads no more, §5.2)."""
DISCONNECT_DRAIN = 1.5
"""Seconds `Socket.disconnect` lets the connection send what was queued before it (a
``phx_leave`` just before a disconnect), as phoenix.js waits for its send buffer; over
long-poll, until the server acknowledged the POSTs (else the channels would linger
until the server ends the idle session, 15 s later)."""

Transport = Literal["websocket", "longpoll"]
WebSocket: Final = "websocket"
"""``Socket(url, transport=WebSocket)``: the default."""
LongPoll: Final = "longpoll"
"""``Socket(url, transport=LongPoll)``: HTTP long-poll (docs/protocol.md §5)."""


class _TransportClosedError(Exception):
    """The long-poll server ended the connection (by a status in a response body)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


_REFUSALS = {
    400: "the server refused the request (400: a bad vsn or parameters?)",
    403: "the server refused the connection (403: its Socket.connect said no, or the origin or token)",
    404: "there is no socket at this path (404): check the URL, e.g. ws://HOST:PORT/socket",
}


def _failure(url: str, error: BaseException) -> ConnectFailed:
    """What a failed attempt was, in words (`ConnectFailed`)."""
    status: int | None = None
    if isinstance(error, InvalidStatus):
        status = error.response.status_code
    elif isinstance(error, _TransportClosedError):
        status = error.status
    if status is not None:
        return ConnectFailed(url, _REFUSALS.get(status, f"the server answered HTTP {status}"), status)
    host = urlsplit(url).netloc
    if isinstance(error, ConnectionRefusedError):
        return ConnectFailed(url, f"nothing is listening at {host} (connection refused)")
    if isinstance(error, socket.gaierror):
        return ConnectFailed(url, f"cannot resolve {host.rsplit(':', 1)[0]!r} ({error.strerror or error})")
    if isinstance(error, TimeoutError):
        return ConnectFailed(url, "no answer in time")
    if isinstance(error, ConnectionClosed):
        code = error.rcvd.code if error.rcvd is not None else 1006
        return ConnectFailed(url, f"the connection closed (code {code})")
    return ConnectFailed(url, f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)


def _query(params: dict[str, Any], parent: str | None = None) -> str:
    """``params`` as phoenix.js puts them in the URL: nested dicts (and lists, by index)
    as ``user[id]=1``, which the server parses back into nested params; ``True`` and
    ``False`` as ``true`` and ``false``; ``None`` left out."""
    parts: list[str] = []
    for key, value in params.items():
        name = f"{parent}[{key}]" if parent is not None else str(key)
        if isinstance(value, dict):
            parts.append(_query(value, name))
        elif isinstance(value, list | tuple):
            parts.append(_query({str(index): item for index, item in enumerate(value)}, name))
        elif value is None:
            continue
        else:
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            parts.append(urlencode({name: text}))
    return "&".join(part for part in parts if part)


def _run_callbacks(callbacks: list[Callable[[], object]], kind: str) -> None:
    for callback in list(callbacks):
        try:
            callback()
        except Exception:  # a boundary: the connection loop must survive the caller's code
            logger.exception("%s callback %r raised", kind, callback)


class Socket:
    """A client socket: ``Socket("ws://host:4000/socket", params={"token": t})``.

    ``url`` is the socket's endpoint path (``/websocket`` or ``/longpoll`` is appended
    unless present; the scheme is switched between ``ws(s)`` and ``http(s)`` to fit
    ``transport``); ``params`` are sent in the query string as phoenix.js sends them
    (nested dicts as ``user[id]=1``, booleans as ``true``) with ``vsn``, ``"2.0.0"``
    (JSON arrays and binary payloads) or ``"1.0.0"`` (JSON objects, no binary).

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
        transport: Transport = "websocket",
        longpoll_timeout: float = DEFAULT_LONGPOLL_TIMEOUT,
        timeout: float = DEFAULT_TIMEOUT,
        heartbeat_interval: float = DEFAULT_HEARTBEAT,
        reconnect_steps: Sequence[float] = RECONNECT_STEPS,
        rejoin_steps: Sequence[float] = REJOIN_STEPS,
        jitter: float = DEFAULT_JITTER,
        max_queue: int = 1000,
        longpoll_fallback: float | None = None,
    ) -> None:
        if vsn not in ("1.0.0", "2.0.0"):
            raise ValueError(f"this client speaks vsn 1.0.0 and 2.0.0, not {vsn!r}")
        if transport not in ("websocket", "longpoll"):
            raise ValueError(f"transport must be 'websocket' or 'longpoll', not {transport!r}")
        self.params = dict(params or {})
        self.vsn = vsn
        self.transport: Transport = transport
        self.longpoll_timeout = longpoll_timeout
        self._encode: Callable[[str | None, str | None, str, str, Any], str | bytes] = (
            _frames.encode if vsn == "2.0.0" else _frames.encode_v1
        )
        self._decode: Callable[[str | bytes], Message] = _frames.decode if vsn == "2.0.0" else _frames.decode_v1
        self.timeout = timeout
        self.heartbeat_interval = heartbeat_interval
        self.reconnect_steps = tuple(reconnect_steps)
        self.rejoin_steps = tuple(rejoin_steps)
        self.jitter = jitter
        self.max_queue = max_queue
        self.longpoll_fallback = longpoll_fallback
        """Seconds (phoenix.js ``longPollFallbackMs``, in seconds here like every other
        option): when set, a WebSocket attempt that fails before opening or does not
        open within this time (as long as no WebSocket has opened yet: later, the server
        is merely down), or a WebSocket that does not answer a first heartbeat within
        it, switches the socket to long-poll at once, for good."""
        self._fall_back = False
        self._websocket_opened = False
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
        self._tries = 0
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._heartbeat_ref: str | None = None
        self._heartbeat_reply: asyncio.Future[None] | None = None
        self._on_open: list[Callable[[], object]] = []
        self._on_close: list[Callable[[], object]] = []
        self._on_error: list[Callable[[ConnectFailed], object]] = []
        self.last_failure: ConnectFailed | None = None
        """The last failed attempt, said for what it was (None once connected)."""
        self._refused = asyncio.Event()
        self._http_status = 0

    # -- public API -----------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """The URL actually dialled (WebSocket or long-poll, per ``transport``), with
        ``params`` and ``vsn`` in the query; long-poll adds the session token to it."""
        parts = urlsplit(self._url)
        if self.transport == "websocket":
            scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        else:
            scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        path = parts.path.rstrip("/")
        for suffix in ("/websocket", "/longpoll"):
            path = path.removesuffix(suffix)
        path += f"/{self.transport}"
        query = "&".join(part for part in (_query(self.params), _query({"vsn": self.vsn})) if part)
        if parts.query:
            query = f"{parts.query}&{query}"
        return urlunsplit((scheme, parts.netloc, path, query, ""))

    def _shown_url(self) -> str:
        """`endpoint_url` without its query (params may hold a token): for messages."""
        return self.endpoint_url.partition("?")[0]

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
        """Wait until a connection is open: `ConnectFailed` at once if the server
        refuses it (403, 404: retrying cannot help, though the socket keeps trying as
        phoenix.js does), `TimeoutError` after ``timeout`` seconds (``last_failure``
        says why)."""
        async with asyncio.timeout(timeout):
            connected = asyncio.ensure_future(self._connected.wait())
            refused = asyncio.ensure_future(self._refused.wait())
            try:
                await asyncio.wait((connected, refused), return_when=asyncio.FIRST_COMPLETED)
            finally:
                connected.cancel()
                refused.cancel()
        if not self._connected.is_set() and self.last_failure is not None:
            raise self.last_failure

    async def disconnect(self) -> None:
        """Close the connection and stop reconnecting (phoenix.js ``disconnect``).
        Channels stay errored and rejoin if `connect` is called again. Re-raises
        whatever made the connection loop fail, if anything did."""
        self._closing = True
        task, self._task = self._task, None
        if task is None:
            return
        try:
            if self._outbox is not None:  # over either transport
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(DISCONNECT_DRAIN):
                        await self._outbox.join()
            if self._ws is not None:
                await self._ws.close()
        finally:
            # Even when this call is cancelled, the connection loop ends with it.
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
        """Call ``callback()`` every time a connection opens. A callback that raises is
        logged with its traceback; the connection carries on."""
        self._on_open.append(callback)

    def on_error(self, callback: Callable[[ConnectFailed], object]) -> None:
        """Call ``callback(failure)`` after each failed attempt, with the `ConnectFailed`
        that says why and ``retry_in`` (phoenix.js ``onError``)."""
        self._on_error.append(callback)

    def on_close(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` every time a connection closes or fails to open. A
        callback that raises is logged with its traceback; reconnecting carries on."""
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
        self._tries = 0
        while not self._closing:
            fallback = self.longpoll_fallback if self.transport == "websocket" else None
            self._fall_back = False
            try:
                if self.transport == "longpoll":
                    await self._longpoll()
                else:
                    async with connect(
                        self.endpoint_url,
                        open_timeout=self.timeout if fallback is None else min(self.timeout, fallback),
                        close_timeout=1.0,
                        ping_interval=None,
                        max_size=None,
                    ) as ws:
                        await self._serve(ws, fallback)
            except (OSError, TimeoutError, WebSocketException, _TransportClosedError) as exc:
                logger.debug("connection to %s failed or closed: %r", self._url, exc)
                failure = _failure(self._shown_url(), exc)
                if fallback is not None and not self._connected.is_set() and not self._websocket_opened:
                    self._fall_back = True  # failed before any WebSocket opened (phoenix.js: not established)
            else:
                failure = ConnectFailed(self._shown_url(), "the server closed the connection")
            finally:
                self._closed()
            if self._closing:
                return
            if self._fall_back:
                logger.info("WebSocket to %s unusable: falling back to long-poll", self._url)
                self.transport = "longpoll"
                continue
            self._tries += 1
            delay = backoff(self._tries, self.reconnect_steps, self.jitter)
            failure.retry_in = delay
            self.last_failure = failure
            if failure.definitive:
                self._refused.set()
            for callback in list(self._on_error):
                try:
                    callback(failure)
                except Exception:  # a boundary, as for on_open
                    logger.exception("on_error callback %r raised", callback)
            await asyncio.sleep(delay)

    def _opened(self, outbox: asyncio.Queue[str | bytes]) -> None:
        self._tries = 0
        self.last_failure = None
        self._refused.clear()
        self._outbox = outbox
        self._connected.set()
        self.connections += 1
        _run_callbacks(self._on_open, "on_open")
        for channel in list(self._channels):
            channel._on_socket_open()

    async def _serve(self, ws: ClientConnection, fallback: float | None = None) -> None:
        outbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self._ws = ws
        self._websocket_opened = True
        self._opened(outbox)
        loop = asyncio.get_running_loop()
        helpers = [loop.create_task(self._write(ws, outbox)), loop.create_task(self._heartbeat(ws, fallback))]
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

    # -- long-poll (docs/protocol.md §5) -------------------------------------------------

    async def _longpoll(self) -> None:
        url = self.endpoint_url
        parts = urlsplit(url)
        poller, poster = HttpConnection(url), HttpConnection(url)
        try:
            status, token, _ = await self._poll(poller, parts.path, parts.query, None)
            if status != 410 or token is None:
                raise _TransportClosedError(f"long-poll connect answered status {status}", status or self._http_status)
            outbox: asyncio.Queue[str | bytes] = asyncio.Queue()
            self._opened(outbox)
            loop = asyncio.get_running_loop()
            tasks = [
                loop.create_task(self._poll_loop(poller, parts.path, parts.query, token)),
                loop.create_task(self._post_loop(poster, parts.path, parts.query, token, outbox)),
            ]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                results = await asyncio.gather(*tasks, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception):
                    raise result
        finally:
            await poller.close()
            await poster.close()

    def _target(self, path: str, query: str, token: str | None) -> str:
        # phoenix.js: the token goes after the user params and vsn; none yet → a bare "&".
        return f"{path}?{query}&{urlencode({'token': token}) if token is not None else ''}"

    async def _poll(
        self, http: HttpConnection, path: str, query: str, token: str | None
    ) -> tuple[int, str | None, list[Any]]:
        """One GET: ``(status, token, messages)`` from the body; status 0 if unparseable."""
        headers = {"Accept": "application/json"}
        async with asyncio.timeout(self.longpoll_timeout):
            self._http_status, body = await http.request("GET", self._target(path, query, token), headers)
        try:
            answer = orjson.loads(body)
        except ValueError:
            return 0, None, []
        if not isinstance(answer, dict) or not isinstance(answer.get("status"), int):
            return 0, None, []
        new_token = answer.get("token")
        messages = answer.get("messages")
        return (
            answer["status"],
            new_token if isinstance(new_token, str) else None,
            messages if isinstance(messages, list) else [],
        )

    async def _poll_loop(self, http: HttpConnection, path: str, query: str, token: str) -> None:
        while True:
            status, _, messages = await self._poll(http, path, query, token)
            if status == 200:
                for message in messages:
                    if isinstance(message, str):
                        self._dispatch(message)
                    else:
                        self.invalid_frames += 1
                        logger.error("dropped a long-poll message that is not a string: %r", message)
            elif status == 410:
                raise _TransportClosedError("long-poll session gone (410)")
            elif status != 204:
                raise _TransportClosedError(f"long-poll GET answered status {status}")

    async def _post_loop(
        self, http: HttpConnection, path: str, query: str, token: str, outbox: asyncio.Queue[str | bytes]
    ) -> None:
        target = self._target(path, query, token)
        while True:
            batch = [await outbox.get()]
            if self.vsn == "2.0.0":
                # Everything queued meanwhile goes in this POST, up to MAX_BATCH lines.
                while len(batch) < MAX_BATCH and not outbox.empty():
                    batch.append(outbox.get_nowait())
                lines = [f if isinstance(f, str) else base64.b64encode(f).decode() for f in batch]
                headers = {"Content-Type": "application/x-ndjson", "Accept": "application/json"}
                body = "\n".join(lines).encode()
            else:
                # V1 objects in ndjson would be read as base64 lines (§5.2): one frame per POST.
                headers = {"Content-Type": "application/json", "Accept": "application/json"}
                body = batch[0].encode() if isinstance(batch[0], str) else batch[0]
            async with asyncio.timeout(self.longpoll_timeout):
                _, answer = await http.request("POST", target, headers, body)
            try:
                status = orjson.loads(answer).get("status")
            except (ValueError, AttributeError):
                status = None
            if status != 200:
                raise _TransportClosedError(f"long-poll POST answered status {status}")
            for _ in batch:
                outbox.task_done()  # what `disconnect` waits for

    def _closed(self) -> None:
        self._ws = self._outbox = None
        self._connected.clear()
        if self._heartbeat_reply is not None and not self._heartbeat_reply.done():
            self._heartbeat_reply.cancel()
        for channel in list(self._channels):
            channel._on_socket_error()
        _run_callbacks(self._on_close, "on_close")

    async def _write(self, ws: ClientConnection, outbox: asyncio.Queue[str | bytes]) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                frame = await outbox.get()
                try:
                    await ws.send(frame)
                finally:
                    outbox.task_done()  # what `disconnect` waits for

    async def _heartbeat(self, ws: ClientConnection, fallback: float | None) -> None:
        if fallback is not None and not await self._ping(fallback):
            # phoenix.js's health check of the primary transport when a fallback is set.
            logger.info("no heartbeat reply on %s within %s s: closing to fall back", self._url, fallback)
            self._fall_back = True
            await ws.close(1000, "falling back to long-poll")
            return
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            if not await self._ping(self.heartbeat_interval):
                logger.info("heartbeat timeout on %s: closing to reconnect", self._url)
                await ws.close(1000, "heartbeat timeout")
                return

    async def _ping(self, timeout: float) -> bool:
        """Send a heartbeat; whether its reply came within ``timeout`` seconds."""
        self._heartbeat_ref = ref = self._make_ref()
        self._heartbeat_reply = reply = asyncio.get_running_loop().create_future()
        self._send(self._encode(None, ref, "phoenix", "heartbeat", {}))
        try:
            async with asyncio.timeout(timeout):
                await reply
        except TimeoutError:
            return False
        return True

    def _dispatch(self, data: str | bytes) -> None:
        try:
            message = self._decode(data)
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
