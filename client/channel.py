"""`Channel`: one topic joined over a `Socket`, with phoenix.js 1.8's state machine
(docs/protocol.md §3.4).

States: ``closed`` → ``joining`` → ``joined``; ``errored`` (waiting to rejoin);
``leaving``. A channel that was joined once keeps rejoining after a ``phx_error``, a
refused or timed-out rejoin, or a lost connection (immediately when the socket reopens,
else after 1, 2, 5, then every 10 s, each with jitter) until it is left or the server
sends ``phx_close``.

Deliberate difference from phoenix.js: the *first* join's outcome is the caller's to
handle. `Channel.join` raises `JoinError` or `PushTimeout` and the channel is closed,
instead of retrying a refused join forever in the background.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._backoff import backoff
from .errors import ChannelClosed, ClientEncodeError, ClientError, JoinError, PushTimeout
from .message import Message, Reply

if TYPE_CHECKING:
    from .socket import Socket

__all__ = ["Channel", "ChannelState", "Params"]

logger = logging.getLogger("alight.client")

Params = dict[str, Any] | Callable[[], Any]
"""Join parameters: a value, or a function called again before every (re)join."""
Callback = Callable[[Message], object]

_CONTROL = frozenset({"phx_reply", "phx_error", "phx_close", "phx_join", "phx_leave"})


class ChannelState(enum.Enum):
    """The states of phoenix.js's channel."""

    CLOSED = "closed"
    JOINING = "joining"
    JOINED = "joined"
    ERRORED = "errored"
    LEAVING = "leaving"


@dataclass(eq=False)
class _Push:
    event: str
    payload: Any
    future: asyncio.Future[Reply]
    ref: str | None = None


@dataclass(eq=False)
class _Handler:
    event: str
    callback: Callback
    id: int = field(default=0)


class Channel:
    """A channel on ``topic``; make it with `Socket.channel`, then ``await join()``.

    Messages the server pushes or broadcasts reach the callbacks registered with `on`
    and, in arrival order, ``async for message in channel`` (which ends when the channel
    closes). The iteration queue holds at most ``max_queue`` messages; beyond that the
    oldest is dropped and counted in `dropped` (a channel read only through callbacks
    therefore costs bounded memory).
    """

    def __init__(self, socket: Socket, topic: str, params: Params | None, timeout: float, max_queue: int) -> None:
        self.topic = topic
        self.state = ChannelState.CLOSED
        self.join_ref: str | None = None
        """The ref of the current incarnation's ``phx_join``; new on every rejoin."""
        self.dropped = 0
        """Messages dropped from the full iteration queue."""
        self.timeout = timeout
        self._socket = socket
        self._params: Params = params if params is not None else {}
        self._loop = asyncio.get_running_loop()
        self._joined_once = False
        self._first_join: asyncio.Future[Reply] | None = None
        self._join_timer: asyncio.TimerHandle | None = None
        self._rejoin_timer: asyncio.TimerHandle | None = None
        self._rejoin_tries = 0
        self._pending: dict[str, _Push] = {}
        self._buffer: deque[_Push] = deque()
        self._handlers: list[_Handler] = []
        self._next_handler = 0
        self._inbox: deque[Message] = deque()
        self._max_queue = max_queue
        self._inbox_ready = asyncio.Event()

    # -- public API -----------------------------------------------------------------

    async def join(self, timeout: float | None = None) -> Any:
        """Join the topic and return the server's ``ok`` response (phoenix.js
        ``channel.join().receive("ok", ...)``). Sent as soon as the socket is connected.

        Raises `JoinError` on an error reply and `PushTimeout` when no reply came within
        ``timeout`` (default: the channel's ``timeout``, 10 s), `ClientEncodeError` (or what
        a params function raised) when the join cannot be sent; either way the channel
        is closed, and a join the server may still be handling is left (``phx_leave``).
        Cancelling the call leaves the channel the same way. Allowed once per Channel
        object, like phoenix.js."""
        if self._first_join is not None:
            raise ClientError(f"join() called twice on {self.topic!r}; make a new channel with socket.channel()")
        self._first_join = self._loop.create_future()
        self.state = ChannelState.JOINING
        if self._socket.is_connected:
            self._rejoin()
        limit = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                reply = await asyncio.shield(self._first_join)
        except TimeoutError:
            self._leave_now()
            raise PushTimeout(self.topic, "phx_join", limit) from None
        except asyncio.CancelledError:
            self._leave_now()  # nobody will hear the outcome: no channel joined behind our back
            raise
        return reply.response

    async def push(self, event: str, payload: Any = None, timeout: float | None = None) -> Reply:
        """Send ``event`` with ``payload`` (``{}`` by default; `bytes` go as a binary
        frame) and return the server's `Reply`, whatever its status.

        Sent at once if the channel is joined; otherwise buffered until it (re)joins,
        with the timeout already running: a push that times out in the buffer is never
        sent. Raises `PushTimeout` after ``timeout`` seconds (default: the channel's),
        `ChannelClosed` if the channel is or becomes closed, `ClientError` before `join`.

        The buffer has no fixed bound on purpose: each entry is a caller awaiting this
        call, and leaves the buffer when sent or when its timeout ends it."""
        if self._first_join is None:
            raise ClientError(f"push {event!r} before join() on {self.topic!r}")
        if self.state in (ChannelState.CLOSED, ChannelState.LEAVING):
            raise ChannelClosed(f"{self.topic!r} is closed")
        push = _Push(event, {} if payload is None else payload, self._loop.create_future())
        if self._can_push():
            self._send_push(push)
        else:
            # Encoded once now so that a payload that cannot be sent fails here, not
            # when the buffer is flushed (where `_flush` still guards against it).
            self._socket._encode(None, None, self.topic, event, push.payload)
            self._buffer.append(push)
        limit = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                return await push.future
        except TimeoutError:
            raise PushTimeout(self.topic, event, limit) from None
        finally:
            if push.ref is not None:
                self._pending.pop(push.ref, None)
            elif push in self._buffer:
                self._buffer.remove(push)

    async def leave(self) -> None:
        """Leave the topic: send ``phx_leave`` and close the channel at once, without
        waiting for the server (as phoenix.js does); pending pushes fail with
        `ChannelClosed` and iteration ends. Does nothing on a closed channel."""
        self._leave_now()

    def on(self, event: str, callback: Callback) -> int:
        """Call ``callback(message)`` for every ``event`` the server sends to this
        channel; returns an id for `off`. A callback that raises is logged with its
        traceback and the others still run (the reader of the socket must go on)."""
        self._next_handler += 1
        self._handlers.append(_Handler(event, callback, self._next_handler))
        return self._next_handler

    def off(self, event: str, handler_id: int | None = None) -> None:
        """Remove the callbacks for ``event`` (only ``handler_id`` if given)."""
        self._handlers = [
            h for h in self._handlers if h.event != event or (handler_id is not None and h.id != handler_id)
        ]

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        """The next message pushed or broadcast to this channel; stops when it closes."""
        while not self._inbox:
            if self.state is ChannelState.CLOSED and self._first_join is not None:
                raise StopAsyncIteration
            self._inbox_ready.clear()
            await self._inbox_ready.wait()
        return self._inbox.popleft()

    def __repr__(self) -> str:
        return f"<Channel {self.topic!r} {self.state.value} join_ref={self.join_ref!r}>"

    # -- called by the socket -------------------------------------------------------

    def _on_socket_open(self) -> None:
        """phoenix.js: on (re)open the rejoin timer resets and errored channels rejoin now."""
        self._rejoin_tries = 0
        self._cancel(rejoin=True)
        if self.state in (ChannelState.ERRORED, ChannelState.JOINING):
            self._rejoin()

    def _on_socket_error(self) -> None:
        if self.state in (ChannelState.JOINED, ChannelState.JOINING):
            self.state = ChannelState.ERRORED
            self._cancel(join=True)

    def _handle(self, message: Message) -> None:
        # phoenix.js isMember: an old incarnation's frames are dropped.
        if message.join_ref is not None and message.join_ref != self.join_ref:
            return
        event = message.event
        if event == "phx_reply":
            payload = message.payload if isinstance(message.payload, dict) else {}
            reply = Reply(str(payload.get("status")), payload.get("response"))
            if message.ref is not None and message.ref == self.join_ref and self.state is ChannelState.JOINING:
                self._on_join_reply(reply)
            elif message.ref is not None:
                push = self._pending.pop(message.ref, None)
                if push is not None and not push.future.done():
                    push.future.set_result(reply)
            return
        if event == "phx_error":
            if self.state in (ChannelState.JOINED, ChannelState.JOINING):
                self._error()
            return
        if event == "phx_close":
            self._close()
            return
        if event in _CONTROL:
            return
        self._deliver(message)

    # -- the state machine ----------------------------------------------------------

    def _can_push(self) -> bool:
        return self.state is ChannelState.JOINED and self._socket.is_connected

    def _rejoin(self) -> None:
        if self.state in (ChannelState.CLOSED, ChannelState.LEAVING) or not self._socket.is_connected:
            return
        self._cancel(join=True, rejoin=True)
        ref = self._socket._make_ref()
        try:
            params = self._params() if callable(self._params) else self._params
            frame = self._socket._encode(ref, ref, self.topic, "phx_join", params)
        except Exception as exc:  # noqa: BLE001 - a boundary: the params function is the caller's code
            self._join_unsendable(exc)
            return
        # phoenix.js: another Channel object joined or joining on the topic is left first.
        for other in self._socket._channels_on(self.topic):
            if other is not self and other.state in (ChannelState.JOINED, ChannelState.JOINING):
                other._leave_now()
        self.state = ChannelState.JOINING
        self.join_ref = ref
        self._socket._send(frame)
        self._join_timer = self._loop.call_later(self.timeout, self._on_join_timeout, ref)

    def _join_unsendable(self, exc: Exception) -> None:
        """The join payload could not be made or encoded: the first join fails with that
        error (the channel closes); a rejoin is logged and retried after a backoff."""
        if self._first_join is not None and not self._first_join.done() and not self._joined_once:
            self._first_join.set_exception(exc)
            self._first_join.exception()  # join() may have given up already
            self._close()
            return
        logger.error("cannot rejoin %r: %r; retrying", self.topic, exc)
        self._error()

    def _on_join_reply(self, reply: Reply) -> None:
        self._cancel(join=True)
        first = self._first_join is not None and not self._first_join.done() and not self._joined_once
        if reply.ok:
            self.state = ChannelState.JOINED
            self._joined_once = True
            self._rejoin_tries = 0
            while self._buffer:
                push = self._buffer.popleft()
                if not push.future.done():
                    try:
                        self._send_push(push)
                    except ClientEncodeError as exc:  # mutated since `push` checked it
                        push.future.set_exception(exc)
            if first and self._first_join is not None:
                self._first_join.set_result(reply)
        elif first and self._first_join is not None:
            self._first_join.set_exception(JoinError(self.topic, reply.response))
            self._close()
        else:
            self._error()

    def _on_join_timeout(self, ref: str) -> None:
        if self.state is not ChannelState.JOINING or ref != self.join_ref:
            return
        self._join_timer = None
        if self._socket.is_connected:
            self._socket._send(self._socket._encode(ref, self._socket._make_ref(), self.topic, "phx_leave", {}))
        if self._joined_once:
            self._error()
        # Before the first join succeeded, join() itself times out and closes the channel.

    def _error(self) -> None:
        """phx_error, or a refused or timed-out rejoin: errored, rejoin after a backoff."""
        self.state = ChannelState.ERRORED
        self._cancel(join=True, rejoin=True)
        self._rejoin_tries += 1
        delay = backoff(self._rejoin_tries, self._socket.rejoin_steps, self._socket.jitter)
        self._rejoin_timer = self._loop.call_later(delay, self._rejoin)

    def _leave_now(self) -> None:
        if self.state is ChannelState.CLOSED:
            return
        if self._socket.is_connected and self.state in (ChannelState.JOINED, ChannelState.JOINING):
            self.state = ChannelState.LEAVING
            self._socket._send(
                self._socket._encode(self.join_ref, self._socket._make_ref(), self.topic, "phx_leave", {})
            )
        self._close()

    def _close(self) -> None:
        """Closed for good: no rejoin, pending pushes fail, iteration ends."""
        self.state = ChannelState.CLOSED
        self._cancel(join=True, rejoin=True)
        self._socket._remove(self)
        for push in [*self._pending.values(), *self._buffer]:
            if not push.future.done():
                push.future.set_exception(ChannelClosed(f"{self.topic!r} closed before {push.event!r} was answered"))
        self._pending.clear()
        self._buffer.clear()
        if self._first_join is not None and not self._first_join.done():
            self._first_join.set_exception(ChannelClosed(f"{self.topic!r} closed while joining"))
            self._first_join.exception()  # join() may have given up already: not a lost failure
        self._inbox_ready.set()

    def _cancel(self, join: bool = False, rejoin: bool = False) -> None:
        if join and self._join_timer is not None:
            self._join_timer.cancel()
            self._join_timer = None
        if rejoin and self._rejoin_timer is not None:
            self._rejoin_timer.cancel()
            self._rejoin_timer = None

    def _send_push(self, push: _Push) -> None:
        ref = self._socket._make_ref()
        frame = self._socket._encode(self.join_ref, ref, self.topic, push.event, push.payload)
        push.ref = ref
        self._pending[ref] = push
        self._socket._send(frame)

    def _deliver(self, message: Message) -> None:
        for handler in list(self._handlers):
            if handler.event == message.event:
                try:
                    handler.callback(message)
                except Exception:  # a boundary: the socket's reader must survive a user callback
                    logger.exception("callback for %r on %r raised", message.event, self.topic)
        if len(self._inbox) >= self._max_queue:
            self._inbox.popleft()
            self.dropped += 1
        self._inbox.append(message)
        self._inbox_ready.set()
