"""The Python client stops when told to, whatever it was awaiting at that instant.

Python 3.11's `asyncio.wait_for` swallows a cancellation that arrives in the loop turn
where the awaited request completes (CPython gh-86296): the cancelled task returns the
result and runs on. The long-poll loop then kept polling after `Socket.disconnect`
cancelled it, and `alight client` hung until the next poll came back (CI, once in ~30
runs). Here a long-poll server answers every GET at once, so GETs complete in every few
loop turns, and `disconnect` is called after a seeded number of turns: each of the
schedules below lands on some step of a request, several of them on its completion.
"""

from __future__ import annotations

import asyncio
import random

import orjson
import pytest

from alight.client import Socket


async def _serve_longpoll(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """docs/protocol.md §5, as little as the client needs: the first GET (no token) opens a
    session (410 + token); every later GET is answered at once with no messages (204);
    a POST is acknowledged (200)."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line = head.split(b"\r\n", 1)[0]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            if request_line.startswith(b"POST"):
                answer = {"status": 200, "token": "t"}
            elif b"token=t" in request_line:
                answer = {"status": 204, "token": "t"}
            else:
                answer = {"status": 410, "token": "t"}
            body = orjson.dumps(answer)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _disconnect_after_turns(turns: int) -> None:
    server = await asyncio.start_server(_serve_longpoll, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        socket = Socket(f"ws://127.0.0.1:{port}/socket", transport="longpoll", timeout=5.0)
        await socket.connect()
        await socket.wait_connected(5.0)
        for _ in range(turns):
            await asyncio.sleep(0)  # the schedule: this many loop turns of polling
        async with asyncio.timeout(5.0):  # it took until the next poll, or forever
            await socket.disconnect()
        assert not socket.is_connected
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("seed", range(40))
def test_disconnect_stops_the_longpoll_loop_at_any_turn(seed: int) -> None:
    asyncio.run(_disconnect_after_turns(random.Random(seed).randrange(1, 60)))
