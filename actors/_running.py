"""Running a node that owns the interpreter: `Node.run` and `Node.serve`.

They create the event loop (uvloop unless the node says otherwise), tune the garbage
collector while the node runs, start the node, and stop it in order at the end (or
on SIGTERM/SIGINT for `serve`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ._child import ChildSpec
from .supervisor import start_child

if TYPE_CHECKING:
    from ._node import Node

T = TypeVar("T")


@contextlib.contextmanager
def gc_tuned(threshold: tuple[int, int, int] | None) -> Iterator[None]:
    """Apply ``threshold`` to the garbage collector for the duration, then restore it.

    While a node owns the interpreter, collecting young objects less often matters:
    with CPython's default (700, 10, 10) a burst of spawns triggers a full collection
    every 70 000 allocations, each traversing every live process, which makes
    spawning quadratic (measured: 60k spawns/s instead of ~190k).
    """
    if threshold is None:
        yield
        return
    previous = gc.get_threshold()
    gc.set_threshold(*threshold)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None (asyncio's own loop) if not wanted or missing."""
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio is the fallback
        return None
    return uvloop.new_event_loop


async def run_main(node: Node, main: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
    """Start ``node``, run ``main(*args)`` as its first process, stop the node."""
    await node.start()
    try:
        return await node.execute(main, *args)
    finally:
        await node.stop()


async def serve_until_signal(node: Node, children: list[ChildSpec]) -> None:
    """Start ``node`` and ``children`` under its root; stop on SIGTERM/SIGINT (or
    `Node.request_stop`)."""
    await node.start()
    try:
        stopping = node.stopping_event
        loop = node.loop
        # Handlers first: a SIGTERM while the children start (a child may already
        # have said it is ready) still stops the tree in order.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        try:
            for spec in children:
                if stopping.is_set():
                    break
                await node.execute(start_child, node.root, spec)
            await stopping.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    finally:
        await node.stop()
