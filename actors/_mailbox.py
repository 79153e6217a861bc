"""The mailbox: one deque and at most one waiter.

Erlang semantics: `put` never blocks and never fails; `receive` takes the oldest
message that matches, leaving the others in arrival order (a selective receive).
While it waits it remembers how far it has scanned (Erlang's save pointer) and only
looks at messages that arrive later.

Unbounded on purpose, as in Erlang: a bound would make `send` either block or lose
messages, and both break the actor model. Overload is handled where it can be
decided, by the processes that own queues with a policy (socket buffers, PubSub).
The deque is allocated on the first message, so an idle process that was never sent
anything pays nothing for it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import Any

from .errors import ReceiveTimeout

Match = type | tuple[type, ...] | Callable[[Any], bool] | None
"""What `receive` accepts as a pattern: a type or tuple of types (``isinstance``),
a predicate, or ``None`` for any message."""

NO_DEFAULT: Any = object()
_NOT_FOUND: Any = object()


def _predicate(match: Match) -> Callable[[Any], bool] | None:
    if match is None:
        return None
    if isinstance(match, type) or (isinstance(match, tuple) and all(isinstance(t, type) for t in match)):
        types = match
        return lambda message: isinstance(message, types)
    if callable(match):
        return match
    raise TypeError(f"receive pattern must be a type, a tuple of types or a predicate, not {match!r}")


class Mailbox:
    """A process's message queue; the base of `Process`, which adds identity."""

    __slots__ = ("_queue", "_waiter", "last_message", "received")

    def __init__(self) -> None:
        self._queue: deque[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.received = 0
        """How many messages `receive` has returned (the process's message count)."""
        self.last_message: Any = None
        """The message most recently returned by `receive`, for crash reports."""

    def put(self, message: Any) -> None:
        """Append ``message`` and wake the receiver; never blocks, never fails."""
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append(message)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def __len__(self) -> int:
        queue = self._queue
        return 0 if queue is None else len(queue)

    def messages(self) -> list[Any]:
        """A copy of the queued messages, oldest first (for introspection)."""
        return [] if self._queue is None else list(self._queue)

    def _take(self, predicate: Callable[[Any], bool], start: int) -> tuple[Any, int]:
        """Remove and return the first match at or after ``start``; else (_NOT_FOUND, end)."""
        queue = self._queue
        if queue is None:
            return _NOT_FOUND, 0
        index = start
        for message in islice(queue, start, None):
            if predicate(message):
                del queue[index]
                return message, index
            index += 1
        return _NOT_FOUND, index

    def drop(self, predicate: Callable[[Any], bool]) -> bool:
        """Remove the oldest message matching ``predicate`` without receiving it (it is
        not counted in `received`); True if one was removed. For runtime bookkeeping
        such as ``demonitor(ref, flush=True)``."""
        found, _ = self._take(predicate, 0)
        return found is not _NOT_FOUND

    def _got(self, message: Any) -> Any:
        self.received += 1
        self.last_message = message
        return message

    def receive_nowait(self, match: Match = None, default: Any = NO_DEFAULT) -> Any:
        """Take the oldest matching message now, or return ``default``.

        Raises `ReceiveTimeout` when nothing matches and no default is given
        (Erlang's ``receive ... after 0``).
        """
        predicate = _predicate(match)
        queue = self._queue
        if predicate is None:
            if queue:
                return self._got(queue.popleft())
        else:
            found, _ = self._take(predicate, 0)
            if found is not _NOT_FOUND:
                return self._got(found)
        if default is NO_DEFAULT:
            raise ReceiveTimeout("no matching message")
        return default

    async def receive(self, match: Match = None, timeout: float | None = None, default: Any = NO_DEFAULT) -> Any:
        """Wait for the oldest message that matches ``match``; see `actors.receive`."""
        queue = self._queue
        if match is None and queue:
            # The hot path, `_got` inlined: the oldest message of a non-empty mailbox.
            message = queue.popleft()
            self.received += 1
            self.last_message = message
            return message
        if match is None and timeout is None:
            # The other hot path: wait for the next message, any message, forever.
            # The mailbox is empty: give its deque back (760 bytes) and forget the
            # last message (it is only shown by a crash report while being handled)
            # while the process idles; thousands of idle sockets and channels are
            # the common case.
            self._queue = queue = None  # the local too: this frame outlives the wait
            self.last_message = None
            loop = asyncio.get_running_loop()
            while True:
                waiter = self._waiter = loop.create_future()
                try:
                    await waiter
                finally:
                    if self._waiter is waiter:
                        self._waiter = None
                queue = self._queue
                if queue:
                    message = queue.popleft()
                    self.received += 1
                    self.last_message = message
                    return message
        # Anything else in its own coroutine: this one's frame, which every idle
        # process keeps while it waits, stays small (few locals).
        return await self._receive_matching(match, timeout, default)

    async def _receive_matching(self, match: Match, timeout: float | None, default: Any) -> Any:
        """`receive` with a pattern or a timeout: a selective receive (module doc)."""
        queue = self._queue
        predicate = _predicate(match)
        scanned = 0
        if predicate is not None and queue:
            found, scanned = self._take(predicate, 0)
            if found is not _NOT_FOUND:
                return self._got(found)
        if timeout is not None and timeout <= 0:
            return self._timed_out(default)
        loop = asyncio.get_running_loop()
        expired = False
        timer = None
        if timeout is not None:

            def expire() -> None:
                # A flag, not a clock comparison: the loop's clock may read a hair
                # before the deadline when the timer fires.
                nonlocal expired
                expired = True
                self._wake()

            timer = loop.call_later(timeout, expire)
        try:
            while True:
                waiter = self._waiter = loop.create_future()
                try:
                    await waiter
                finally:
                    if self._waiter is waiter:
                        self._waiter = None
                queue = self._queue
                if predicate is None:
                    if queue:
                        message = queue.popleft()
                        self.received += 1
                        self.last_message = message
                        return message
                else:
                    found, scanned = self._take(predicate, scanned)
                    if found is not _NOT_FOUND:
                        return self._got(found)
                if expired:
                    return self._timed_out(default)
        finally:
            if timer is not None:
                timer.cancel()

    @staticmethod
    def _timed_out(default: Any) -> Any:
        if default is NO_DEFAULT:
            raise ReceiveTimeout("no matching message before the timeout")
        return default
