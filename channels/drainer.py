"""The drainer: an endpoint that stops in order closes its connections in batches.

Phoenix 1.7's socket ``drainer`` (``batch_size``, ``batch_interval``, ``shutdown``). On
an orderly stop (SIGTERM, ``node.request_stop()``) the endpoint's last child, started
after the listener and so stopped before it, drains:

1. the listener stops accepting (on a shared port, new connections go to the other
   nodes at once);
2. every extension's ``draining`` hook runs: presence leaves the cluster (a graceful
   permdown: every other node drops this node's presences at once, rather than one by
   one as its connections close), long-poll hands over its sessions;
3. the WebSockets (closed with the listener's ``shutdown_close_code``, so clients
   reconnect) and long-poll sessions (a client's next poll gets 410 and opens a new
   session elsewhere) are closed ``batch_size`` at a time, ``batch_interval`` seconds
   apart, so that the clients of a big node do not all reconnect to the others in
   the same instant; whatever is left after ``shutdown`` seconds is closed by the
   listener's own stop.

Until its connection closes a client still gets every broadcast, from any node: the
node stays in the cluster (its PubSub and mesh stop after the endpoint).

``Endpoint(drainer=Drainer(batch_size=1_000, batch_interval=0.5))`` configures it,
``drainer=None`` turns it off (the listener then closes every connection at once).
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..actors import SHUTDOWN, ChildSpec, Exit, Pid, receive, self_pid, spawn_link, trap_exit
from ..transports.listener import close_sockets, socket_pids, stop_accepting
from .errors import ChannelError

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = ["Drainer", "DrainReport"]

log = logging.getLogger("alight.channels.drainer")


@dataclass(frozen=True, slots=True)
class DrainReport:
    """What a drain did (logged, and kept as `Endpoint.last_drain`)."""

    websockets: int
    sessions: int
    batches: int
    seconds: float
    cut_short: bool
    """The ``shutdown`` bound was reached with connections left (the listener closed them)."""


@dataclass(frozen=True, slots=True)
class Drainer:
    """How an endpoint drains on an orderly stop (module doc); Phoenix's defaults."""

    batch_size: int = 10_000
    """Connections closed at once."""
    batch_interval: float = 2.0
    """Seconds between two batches."""
    shutdown: float = 30.0
    """Seconds the whole drain may take."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ChannelError(f"Drainer.batch_size must be >= 1, got {self.batch_size!r}")
        if not self.batch_interval >= 0:
            raise ChannelError(f"Drainer.batch_interval must be >= 0, got {self.batch_interval!r}")
        if not self.shutdown > 0:
            raise ChannelError(f"Drainer.shutdown must be > 0, got {self.shutdown!r}")

    def child_spec(self, endpoint: Endpoint) -> ChildSpec:
        """The endpoint's last child: it waits, and drains when it is stopped in order."""
        drainer = self

        async def start() -> Pid:
            return spawn_link(drainer._hold, endpoint, self_pid())  # run by the supervisor

        return ChildSpec(id="drainer", start=start, shutdown=self.shutdown + 5.0)

    async def _hold(self, endpoint: Endpoint, parent: Pid) -> None:
        trap_exit(True)
        exit_ = await receive(lambda m: isinstance(m, Exit) and m.pid == parent)
        assert isinstance(exit_, Exit)
        if exit_.reason == SHUTDOWN:  # an orderly stop: a crash or kill drains nothing
            endpoint.last_drain = await self.drain(endpoint)

    async def drain(self, endpoint: Endpoint) -> DrainReport:
        """Drain ``endpoint`` now (module doc); from the endpoint's process tree."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.shutdown
        listener = endpoint.listener
        if listener is not None:
            await stop_accepting(listener)
        sessions: list[Pid] = []
        for extension in endpoint.active_extensions:
            try:
                sessions += await extension.draining(endpoint)
            except Exception:  # boundary: one extension must not stop the drain
                log.exception("drain: the draining hook of %r failed", extension)
        websockets = await socket_pids(listener) if listener is not None else []
        targets = [*websockets, *sessions]
        first_session = len(websockets)
        batches = math.ceil(len(targets) / self.batch_size)
        if targets:
            log.info(
                "drain: closing %d WebSockets and %d long-poll sessions in %d batch(es) of %d, %ss apart",
                len(websockets),
                len(sessions),
                batches,
                self.batch_size,
                self.batch_interval,
            )
        cut_short = False
        me = self_pid()
        node = endpoint.node
        for start in range(0, len(targets), self.batch_size):
            if start:
                wait = min(self.batch_interval, deadline - loop.time())
                if wait <= 0 and self.batch_interval > 0:
                    cut_short = True
                    log.warning(
                        "drain: %ss reached with %d connections open: the listener closes them",
                        self.shutdown,
                        len(targets) - start,
                    )
                    break
                await asyncio.sleep(wait)
            end = start + self.batch_size
            batch_websockets = targets[start : min(end, first_session)]
            if batch_websockets and listener is not None:
                await close_sockets(listener, batch_websockets)
            for pid in targets[max(start, first_session) : end]:
                node.exit(me, pid, SHUTDOWN)
        report = DrainReport(len(websockets), len(sessions), batches, round(loop.time() - started, 3), cut_short)
        if targets:
            log.info("drain: done in %.2fs", report.seconds)
        return report
