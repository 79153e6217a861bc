"""Driving the reference app with the Python client: bounded runs, a connected socket per transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from alight.client import (
    Socket,
    Transport,
)
from testkit import UNIT
from testkit.processes import RunningApp

T = TypeVar("T")


WAIT = 5 * UNIT


@dataclass(frozen=True)
class TransportCase:
    """One transport for the shared scenarios: its ``name`` for `Socket(transport=...)`,
    and, as data, what differs between transports: ``reopen_within``, how long the
    client may take to open a new connection after the server ended its session."""

    name: Transport
    reopen_within: float


WEBSOCKET = TransportCase("websocket", WAIT)  # the server closes the WebSocket at once


LONGPOLL = TransportCase("longpoll", 15 * UNIT)


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(main(), 30 * UNIT)

    return asyncio.run(bounded(), debug=True)


@asynccontextmanager
async def client(
    app: RunningApp, user_id: str = "ann", transport: TransportCase = WEBSOCKET, **options: Any
) -> AsyncIterator[Socket]:
    """A connected `Socket` to ``app`` over ``transport`` (``options`` go to `Socket`)."""
    options.setdefault("rejoin_steps", (0.05,))
    socket = Socket(f"ws://{app.host}/socket", params={"user_id": user_id}, transport=transport.name, **options)
    async with socket:
        await socket.wait_connected(WAIT)
        yield socket


async def wait_until(condition: Callable[[], bool], changed: asyncio.Event) -> None:
    """Wait (bounded) until ``condition()``, re-checking each time ``changed`` is set."""

    async def loop() -> None:
        while not condition():
            changed.clear()
            await changed.wait()

    await asyncio.wait_for(loop(), WAIT)
