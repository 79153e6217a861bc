"""Raw broadcast servers: the baselines that ``benchmarks/channels.py`` measures alight against.

Run ``python benchmarks/_raw_servers.py picows|websockets|blast --port P``; the server binds
127.0.0.1, prints one line ``ready KIND 127.0.0.1:P pid=PID`` when it accepts connections, and
stops on SIGTERM/SIGINT, when its parent process goes away, or after ``--max-seconds``
(default 900): it never outlives the benchmark that started it.

Each server is one process on uvloop, speaks just enough of the Phoenix V2 JSON protocol for
the load generator (``benchmarks/_loadgen.py``) to drive it exactly as it drives alight's
benchmark app, and does the least work a correct broadcast server can do:

- ``GET /socket/websocket?vsn=2.0.0`` upgrades; ``GET /health`` answers 200 ``ok`` (the
  readiness probe, as alight's reference app); any other path is 404.
- ``[jr, ref, topic, "phx_join", p]`` subscribes the connection to ``topic`` and replies
  ``[jr, ref, topic, "phx_reply", {"status":"ok","response":{}}]``; ``phx_leave``
  unsubscribes and replies ok; ``heartbeat`` on ``phoenix`` replies ok ``{}``.
- ``bench_broadcast`` (the control message, `CONTROL_EVENT`), payload
  ``{"topic": T, "event": E, "payload": P, "count": N, "burst": K}``: broadcasts
  ``[null, null, T, E, P]`` N times to every connection joined to T -- each broadcast is
  JSON-encoded once (as Phoenix's fastlane encodes once per serializer) and written to every
  subscriber, yielding to the loop between broadcasts as a server that broadcasts messages
  as they come would (every K broadcasts with ``burst``, default 1: K messages arriving in
  one loop turn) -- then replies ok ``{}`` to the sender.
- any other event (``ping`` ...) replies ok with the payload it carried.

Kinds:

- ``picows``: picows (Cython) WebSocket server; ``WSTransport.send`` per subscriber.
- ``websockets``: the ``websockets`` asyncio server with ``websockets.broadcast`` (its
  fastest idiomatic fan-out: no per-connection await), compression and pings off.
- ``blast``: not a fair server but a load-generator capacity probe. It is the picows
  server, except that ``bench_broadcast`` frames the N broadcasts once into one buffer and
  writes it to each subscriber with a single ``write``; it produces frames far faster
  than any real broadcast server, so the rate a load generator reaches against it is the
  load generator's own ceiling.

alight's benchmark app must accept the same control message (see ``benchmarks/channels.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
import uvloop

CONTROL_EVENT = "bench_broadcast"
"""The event of the control message that makes a server broadcast."""

OK_EMPTY: dict[str, Any] = {"status": "ok", "response": {}}

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class BroadcastJob:
    """What a control message asked for: `count` broadcasts of ``[null, null, topic, event, payload]``."""

    topic: str
    event: str
    payload: Any
    count: int
    reply_to: tuple[Any, Any, str]
    burst: int = 1
    """Broadcasts made between two yields to the loop (1: yield after each)."""
    """``(join_ref, ref, topic)`` of the control message, for the reply."""


class Hub(Generic[C]):
    """The protocol logic shared by every kind: topics, joins and replies, with no I/O.

    ``handle`` takes one text frame from a connection and returns either the reply frame to
    send or, for a control message, the broadcast job to `run` (which returns the reply).
    """

    def __init__(self) -> None:
        self.topics: dict[str, dict[C, None]] = {}
        self.joined: dict[C, set[str]] = {}

    def handle(self, conn: C, data: bytes | str) -> bytes | BroadcastJob:
        join_ref, ref, topic, event, payload = orjson.loads(data)
        response: Any = {}
        if event == "phx_join":
            self.topics.setdefault(topic, {})[conn] = None
            self.joined.setdefault(conn, set()).add(topic)
        elif event == "phx_leave":
            self._leave(conn, topic)
        elif event == CONTROL_EVENT:
            order = (payload["topic"], payload["event"], payload["payload"], int(payload["count"]))
            return BroadcastJob(*order, reply_to=(join_ref, ref, topic), burst=max(1, int(payload.get("burst", 1))))
        elif event != "heartbeat":
            response = payload
        return orjson.dumps([join_ref, ref, topic, "phx_reply", {"status": "ok", "response": response}])

    def drop(self, conn: C) -> None:
        """Forget a closed connection."""
        for topic in self.joined.pop(conn, ()):
            self._leave(conn, topic)

    def _leave(self, conn: C, topic: str) -> None:
        subscribers = self.topics.get(topic)
        if subscribers is not None:
            subscribers.pop(conn, None)
            if not subscribers:
                del self.topics[topic]

    async def run(self, job: BroadcastJob, broadcast: Callable[[Iterable[C], bytes], None]) -> bytes:
        """Broadcast ``job.count`` frames, encoding each once, yielding between broadcasts.

        Yielding lets the loop flush and read between broadcasts; measured on picows, one
        burst of 200 broadcasts without yielding is ~20% slower (the socket buffers fill and
        the rest goes through the transport's user-space buffer).
        """
        started = time.perf_counter()
        for i in range(1, job.count + 1):
            frame = orjson.dumps([None, None, job.topic, job.event, job.payload])
            broadcast(list(self.topics.get(job.topic, ())), frame)
            if i % job.burst == 0:
                await asyncio.sleep(0)
        return job_reply(job, time.perf_counter() - started)


def job_reply(job: BroadcastJob, seconds: float) -> bytes:
    """The ok reply to a control message; ``sent_in`` is how long the server took to write it all."""
    response = {"sent_in": seconds}
    return orjson.dumps([*job.reply_to, "phx_reply", {"status": "ok", "response": response}])


# -- picows -------------------------------------------------------------------------------


def _ws_text_frame(payload: bytes) -> bytes:
    """An unmasked server-to-client text frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 65536:
        header = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return header + payload


async def serve_picows(port: int, stop: asyncio.Event, *, blast: bool = False) -> None:
    from picows import (
        WSFrame,
        WSListener,
        WSMsgType,
        WSTransport,
        WSUpgradeRequest,
        WSUpgradeResponse,
        WSUpgradeResponseWithListener,
        ws_create_server,
    )

    hub: Hub[WSTransport] = Hub()
    jobs: set[asyncio.Task[None]] = set()

    def send_each(conns: Iterable[WSTransport], frame: bytes) -> None:
        for conn in conns:
            conn.send(WSMsgType.TEXT, frame)

    async def run_job(conn: WSTransport, job: BroadcastJob) -> None:
        if blast:
            started = time.perf_counter()
            frame = _ws_text_frame(orjson.dumps([None, None, job.topic, job.event, job.payload]))
            burst = frame * job.count
            for sub in list(hub.topics.get(job.topic, ())):
                sub.underlying_transport.write(burst)
            reply = job_reply(job, time.perf_counter() - started)
        else:
            reply = await hub.run(job, send_each)
        if not conn.is_disconnected:
            conn.send(WSMsgType.TEXT, reply)

    class Connection(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                reply = hub.handle(transport, frame.get_payload_as_bytes())
                if isinstance(reply, bytes):
                    transport.send(WSMsgType.TEXT, reply)
                else:
                    task = asyncio.get_running_loop().create_task(run_job(transport, reply))
                    jobs.add(task)
                    task.add_done_callback(jobs.discard)
            elif frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            hub.drop(transport)

    def route(request: WSUpgradeRequest) -> WSListener | WSUpgradeResponseWithListener | None:
        path = request.path.split(b"?", 1)[0]
        if path == b"/socket/websocket":
            return Connection()
        if path == b"/health":
            return WSUpgradeResponseWithListener(WSUpgradeResponse.create_ok_response(b"ok"), None)
        return None

    server = await ws_create_server(route, "127.0.0.1", port, backlog=4096)
    _ready("blast" if blast else "picows", server.sockets[0].getsockname()[1])
    try:
        await stop.wait()
    finally:
        server.close()
        for task in jobs:
            task.cancel()


# -- websockets ---------------------------------------------------------------------------


async def serve_websockets(port: int, stop: asyncio.Event) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve
    from websockets.datastructures import Headers
    from websockets.exceptions import ConnectionClosed
    from websockets.http11 import Request, Response

    hub: Hub[ServerConnection] = Hub()

    def send_all(conns: Iterable[ServerConnection], frame: bytes) -> None:
        broadcast(conns, frame, text=True)

    def route(conn: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/socket/websocket":
            return None
        if path == "/health":
            return Response(200, "OK", Headers([("Content-Length", "2")]), b"ok")
        return Response(404, "Not Found", Headers([("Content-Length", "0")]), b"")

    async def handler(conn: ServerConnection) -> None:
        try:
            async for message in conn:
                reply = hub.handle(conn, message)
                if not isinstance(reply, bytes):
                    reply = await hub.run(reply, send_all)
                await conn.send(reply, text=True)
        except ConnectionClosed:
            pass  # the client went away; drop() below forgets it
        finally:
            hub.drop(conn)

    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        ping_interval=None,
        process_request=route,
        server_header=None,
        backlog=4096,
    ) as server:
        sockets = list(server.sockets)
        _ready("websockets", sockets[0].getsockname()[1])
        await stop.wait()


# -- process shell ------------------------------------------------------------------------


def _ready(kind: str, port: int) -> None:
    print(f"ready {kind} 127.0.0.1:{port} pid={os.getpid()}", flush=True)


async def _main(kind: str, port: int, max_seconds: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()
    deadline = loop.time() + max_seconds

    def watchdog() -> None:
        # Stop when the benchmark that started us is gone, or after max_seconds.
        if loop.time() > deadline or os.getppid() != parent:
            stop.set()
        else:
            loop.call_later(0.5, watchdog)

    watchdog()
    if kind == "websockets":
        await serve_websockets(port, stop)
    else:
        await serve_picows(port, stop, blast=kind == "blast")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("kind", choices=("picows", "websockets", "blast"))
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="stop after this long in any case")
    args = parser.parse_args(argv)
    uvloop.run(_main(args.kind, args.port, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
