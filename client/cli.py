"""``alight client URL TOPIC``: join a topic, print what arrives, push what is typed.

Output, one line per event on stdout (flushed at once)::

    joined TOPIC {"...": ...}          the join's ok response
    EVENT {"...": ...}                 a message pushed or broadcast to the channel
    reply EVENT STATUS {"...": ...}    the reply to a line you sent

Input, one ``EVENT JSON`` line per push (``JSON`` optional, ``{}`` by default). On end of
input the client waits up to ``linger`` seconds for outstanding replies (messages keep
being printed meanwhile), leaves and exits 0; a push still unanswered then is not an
error (the server may answer some events with nothing). Problems with a line (bad JSON)
go to stderr and the client goes on.

What the connection does goes to stderr, as it happens: ``connecting to URL``,
``connected``, each failed attempt for what it was and when the next one comes
(``nothing is listening at HOST:PORT (connection refused); retrying in 1.0 s``),
``disconnected``. A server that refuses the connection (403) or has no socket at that
path (404) ends the client at once with exit status 1, as does a first connection that
does not open within ``timeout``; a failed join exits 1 too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sys
import threading
from typing import Any, TextIO

import orjson

from .channel import Channel
from .errors import ClientError, ConnectFailed, PushTimeout
from .socket import Socket, Transport

__all__ = ["format_payload", "parse_line", "parse_params", "run_client"]


def parse_params(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; `ValueError` for an item without ``=``."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {pair!r}")
        params[key] = value
    return params


def parse_line(line: str) -> tuple[str, Any] | None:
    """``"EVENT JSON"`` as ``(event, payload)``; None for a blank line; `ValueError`
    for JSON that does not parse."""
    text = line.strip()
    if not text:
        return None
    event, _, rest = text.partition(" ")
    rest = rest.strip()
    try:
        payload = orjson.loads(rest) if rest else {}
    except orjson.JSONDecodeError as error:
        raise ValueError(f"bad JSON after {event!r}: {error}") from None
    return event, payload


def format_payload(payload: Any) -> str:
    """A payload as one line: JSON, or ``base64:...`` for a binary payload."""
    if isinstance(payload, bytes):
        return "base64:" + base64.b64encode(payload).decode()
    return orjson.dumps(payload).decode()


def _said(failure: ConnectFailed, err: TextIO) -> None:
    delay = failure.retry_in
    when = "" if delay is None else f"{delay * 1000:.0f} ms" if delay < 1 else f"{delay:.1f} s"
    retry = f"; retrying in {when}" if when else ""
    print(f"{failure.reason}{retry}", file=err, flush=True)


def _read_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None], stream: TextIO) -> None:
    """Thread body: every line of ``stream`` into ``queue``, then None (end of input)."""
    try:
        for line in stream:
            loop.call_soon_threadsafe(queue.put_nowait, line)
    except (OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(queue.put_nowait, None)


async def _print_messages(channel: Channel, out: TextIO) -> None:
    async for message in channel:
        print(f"{message.event} {format_payload(message.payload)}", file=out, flush=True)


async def _push(channel: Channel, event: str, payload: Any, out: TextIO, err: TextIO) -> None:
    try:
        reply = await channel.push(event, payload)
    except PushTimeout:
        print(f"no reply to {event}", file=err, flush=True)
        return
    except ClientError as error:
        print(f"error: {error}", file=err, flush=True)
        return
    print(f"reply {event} {reply.status} {format_payload(reply.response)}", file=out, flush=True)


async def run_client(
    url: str,
    topic: str,
    *,
    params: dict[str, Any] | None = None,
    join_payload: dict[str, Any] | None = None,
    transport: Transport = "websocket",
    vsn: str = "2.0.0",
    timeout: float = 10.0,
    linger: float = 1.0,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Join ``topic`` at ``url`` and run until end of input; the exit status."""
    stdin = sys.stdin if stdin is None else stdin
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    loop = asyncio.get_running_loop()
    socket = Socket(url, params=params, vsn=vsn, transport=transport, timeout=timeout)
    print(f"connecting to {socket.endpoint_url.partition('?')[0]}", file=err, flush=True)
    socket.on_open(lambda: print("connected", file=err, flush=True))
    socket.on_error(lambda failure: _said(failure, err))
    await socket.connect()
    tasks: set[asyncio.Task[None]] = set()
    printer: asyncio.Task[None] | None = None
    try:
        try:
            await socket.wait_connected(timeout)
        except ConnectFailed as failure:
            print(f"error: {failure}", file=err, flush=True)
            return 1
        except TimeoutError:
            why = f": {socket.last_failure.reason}" if socket.last_failure is not None else ""
            print(f"error: not connected within {timeout:g} s{why}", file=err, flush=True)
            return 1
        socket.on_close(lambda: print("disconnected", file=err, flush=True))
        channel = socket.channel(topic, join_payload or {})
        try:
            response = await channel.join()
        except ClientError as error:
            print(f"join failed: {error}", file=err, flush=True)
            return 1
        print(f"joined {topic} {format_payload(response)}", file=out, flush=True)
        printer = loop.create_task(_print_messages(channel, out))
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        # A daemon thread: a blocked read never holds up the exit (Ctrl-C included).
        threading.Thread(target=_read_lines, args=(loop, lines, stdin), daemon=True).start()
        while (line := await lines.get()) is not None:
            try:
                parsed = parse_line(line)
            except ValueError as error:
                print(f"error: {error}", file=err, flush=True)
                continue
            if parsed is None:
                continue
            task = loop.create_task(_push(channel, parsed[0], parsed[1], out, err))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        # End of input: outstanding replies (and messages) get up to `linger` seconds.
        await asyncio.sleep(0)
        if tasks:
            await asyncio.wait(set(tasks), timeout=linger)
        else:
            await asyncio.sleep(min(linger, 0.2))
        for task in list(tasks):  # no reply in time (an event the server answers with none)
            task.cancel()
        await channel.leave()
        return 0
    finally:
        for task in [*tasks, *([printer] if printer else [])]:
            task.cancel()
        for task in [*tasks, *([printer] if printer else [])]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await socket.disconnect()
