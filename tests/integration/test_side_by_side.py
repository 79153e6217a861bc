"""The Python client and the official phoenix.js, side by side on the wire.

One scenario (tests/js/side_by_side.js has the JavaScript side, run by phoenix.js and by
alight.js's ES module build in Node): connect with
``user_id=side``, join ``room:side``, push ``ping``, ``push_me`` (and wait for
``pushed``), ``error_reply``, ``async``, an unknown event; over WebSocket also a binary
payload and a leave; disconnect. Each client runs it through a relay between it and the
reference app that records what goes through:

- WebSocket: every frame in both directions, the request path and query, and the close
  code the client sent;
- long-poll: every request (method, path and query with the session token masked,
  content type, body) and every answer.

After normalising refs (each distinct ``ref``/``join_ref`` becomes its order of first
appearance) the frames the clients sent are the same, in the same order, and so are
the server's answers up to the leave (presence events aside: their ``phx_ref``s and
their order relative to the join reply are the server's, not the client's; and the
answers to the leave race the client's close that follows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from testkit import UNIT
from testkit.processes import JS_DIR, RunningApp, require_js
from testkit.python_client import WAIT

from alight.client import LongPoll, Socket, WebSocket
from alight.client._http import HttpConnection

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

PRESENCE_EVENTS = ("presence_state", "presence_diff")


@dataclass
class Recording:
    """What went through the relay for one client connection."""

    path: str = ""
    frames: list[tuple[str, str | bytes]] = field(default_factory=list)
    """("client" or "server", the frame as sent), in the order the relay saw them."""
    client_close: tuple[int | None, str | None] = (None, None)


async def relay(app: RunningApp, recordings: list[Recording], finished: asyncio.Queue[Recording]) -> Any:
    """A WebSocket relay on 127.0.0.1 in front of the app, recording each connection
    (put on ``finished`` once the client has closed it)."""
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    async def handler(client: ServerConnection) -> None:
        assert client.request is not None
        recording = Recording(path=client.request.path)
        recordings.append(recording)
        async with connect(f"ws://{app.host}{client.request.path}") as upstream:

            async def up() -> None:
                async for frame in client:
                    recording.frames.append(("client", frame))
                    await upstream.send(frame)

            async def down() -> None:
                try:
                    async for frame in upstream:
                        recording.frames.append(("server", frame))
                        await client.send(frame)
                except ConnectionClosed:
                    pass

            downstream = asyncio.create_task(down())
            try:
                await up()
            finally:
                recording.client_close = (client.close_code, client.close_reason)
                await upstream.close()
                await downstream
                finished.put_nowait(recording)

    return serve(handler, "127.0.0.1", 0)


def decode(frame: str | bytes) -> list[Any]:
    """A V2 frame as a list: JSON arrays as they are, a client binary push (docs/protocol.md
    §2.4) as ``[join_ref, ref, topic, event, {"binary": [bytes...]}]``, a server binary
    reply as ``[join_ref, ref, topic, "phx_reply", {"status", "response": {"binary"}}]``."""
    if isinstance(frame, str):
        decoded: list[Any] = json.loads(frame)
        return decoded
    kind = frame[0]
    sizes = list(frame[1:5])
    fields, at = [], 5
    for size in sizes:
        fields.append(frame[at : at + size].decode())
        at += size
    payload = {"binary": list(frame[at:])}
    if kind == 0:
        return [fields[0], fields[1], fields[2], fields[3], payload]
    assert kind == 1, frame
    return [fields[0], fields[1], fields[2], "phx_reply", {"status": fields[3], "response": payload}]


def normalised(recording: Recording) -> dict[str, list[Any]]:
    """The frames of each direction, refs replaced by their order of first appearance."""
    names: dict[Any, str] = {}

    def name(ref: Any) -> Any:
        if ref is None:
            return None
        return names.setdefault(ref, f"ref{len(names) + 1}")

    out: dict[str, list[Any]] = {"client": [], "server": []}
    left = False
    for direction, frame in recording.frames:
        join_ref, ref, topic, event, payload = decode(frame)
        entry = [name(join_ref), name(ref), topic, event, payload]
        # The server's answers to a leave race the client's own close right after it.
        if event not in PRESENCE_EVENTS and not (left and direction == "server"):
            out[direction].append(entry)
        left = left or (direction == "client" and event == "phx_leave")
    return out


async def python_scenario(url: str, transport: str) -> dict[str, Any]:
    replies: dict[str, Any] = {}
    socket = Socket(url, params={"user_id": "side"}, transport=LongPoll if transport == "longpoll" else WebSocket)
    await socket.connect()
    await socket.wait_connected(WAIT)
    channel = socket.channel("room:side", {"device": "d"})
    pushed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    channel.on("pushed", lambda message: pushed.set_result(message.payload))  # one "pushed" only
    replies["join"] = await channel.join(timeout=WAIT)
    replies["ping"] = await channel.push("ping", {"n": 1})
    replies["push_me"] = await channel.push("push_me", {"x": 1})
    replies["pushed"] = await asyncio.wait_for(pushed, WAIT)
    replies["error_reply"] = await channel.push("error_reply", {})
    replies["async"] = await channel.push("async", {"a": 1})
    replies["nope"] = await channel.push("nope", {})
    if transport == "websocket":
        replies["binary"] = await channel.push("binary", bytes([1, 2, 3]))
        await channel.leave()
    await socket.disconnect()
    return replies


async def js_scenario(url: str, transport: str, client: str = "phoenix", app_host: str = "") -> None:
    """tests/js/side_by_side.js with ``client`` "phoenix" (phoenix.js) or "alight"
    (alight.mjs from the app at ``app_host``)."""
    proc = await asyncio.create_subprocess_exec(
        require_js(),
        "side_by_side.js",
        url,
        transport,
        client,
        app_host,
        cwd=JS_DIR,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "ALIGHT_TEST_UNIT": str(UNIT)},
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 25 * UNIT)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    lines = [json.loads(line) for line in stdout.decode().splitlines() if line.startswith("{")]
    assert proc.returncode == 0, f"{lines}\n{stderr.decode()[-3000:]}"
    assert lines[-1]["check"] == "done", lines
    assert lines[-1]["client"] == client


def test_python_client_and_phoenix_js_send_the_same_frames(reference_app: RunningApp) -> None:
    require_js()

    async def main() -> list[Recording]:
        recordings: list[Recording] = []
        finished: asyncio.Queue[Recording] = asyncio.Queue()
        runs: list[Recording] = []
        async with await relay(reference_app, recordings, finished) as server:
            port = server.sockets[0].getsockname()[1]
            url = f"ws://127.0.0.1:{port}/socket"
            for scenario in (
                python_scenario,
                js_scenario,
                functools.partial(js_scenario, client="alight", app_host=reference_app.host),
            ):
                await scenario(url, "websocket")
                runs.append(await asyncio.wait_for(finished.get(), WAIT))
        assert recordings == runs
        return runs

    python, phoenix, alight_js = asyncio.run(asyncio.wait_for(main(), 60 * UNIT), debug=True)
    assert python.path == phoenix.path == alight_js.path == "/socket/websocket?user_id=side&vsn=2.0.0"
    ours, theirs = normalised(python), normalised(phoenix)
    assert ours["client"] == theirs["client"]
    assert ours["server"] == theirs["server"]
    assert normalised(alight_js) == theirs  # alight.js too
    events = [frame[3] for frame in ours["client"]]
    assert events == ["phx_join", "ping", "push_me", "error_reply", "async", "nope", "binary", "phx_leave"]
    answers = [(frame[3], frame[4].get("status")) for frame in ours["server"]]
    assert answers[:3] == [("phx_reply", "ok"), ("phx_reply", "ok"), ("pushed", None)]
    assert len(answers) == 8
    # The one difference on the wire: the close frame. phoenix.js's disconnect() closes
    # without a status code (the server sees 1005); the Python client says 1000 (normal
    # closure). Both are a clean close to the server.
    assert python.client_close == (1000, "")
    assert phoenix.client_close == alight_js.client_close == (1005, "")


# -- long-poll ---------------------------------------------------------------------------


@dataclass
class HttpExchange:
    method: str
    target: str
    """Path and query, the session token replaced by ``T``."""
    content_type: str | None
    body: bytes
    answer: bytes


class _Request:
    """httptools callbacks: one request."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


async def http_relay(app: RunningApp, exchanges: list[HttpExchange], tasks: set[asyncio.Task[None]]) -> asyncio.Server:
    """An HTTP relay on 127.0.0.1 in front of the app's long-poll endpoint, recording
    every request and answer; its connection handlers are in ``tasks``."""
    import httptools

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = HttpConnection(f"http://{app.host}")
        try:
            while True:
                request = _Request()
                parser = httptools.HttpRequestParser(request)
                while not request.complete:
                    data = await reader.read(65536)
                    if not data:
                        return
                    parser.feed_data(data)
                method = parser.get_method().decode()
                target = request.url.decode()
                headers = {
                    k: v for k, v in request.headers.items() if k in ("accept", "content-type", "x-phoenix-authtoken")
                }
                exchange = HttpExchange(
                    method, _mask_token(target), headers.get("content-type"), bytes(request.body), b""
                )
                exchanges.append(exchange)
                status, exchange.answer = await upstream.request(method, target, headers, bytes(request.body))
                head = (
                    f"HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\ncontent-length: {len(exchange.answer)}"
                )
                writer.write(head.encode() + b"\r\n\r\n" + exchange.answer)
                await writer.drain()
        except (OSError, httptools.HttpParserError):
            pass
        finally:
            await upstream.close()
            writer.close()

    def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(serve(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _mask_token(target: str) -> str:
    path, _, query = target.partition("?")
    parts = ["token=T" if part.startswith("token=") else part for part in query.split("&")]
    return f"{path}?{'&'.join(parts)}"


def normalised_longpoll(exchanges: list[HttpExchange]) -> dict[str, Any]:
    """What the client sent (each POST as its frames) and the messages the server gave
    its GETs (flattened: how they were split among GETs is timing), refs normalised."""
    names: dict[Any, str] = {}

    def frame(raw: str) -> list[Any]:
        join_ref, ref, topic, event, payload = json.loads(raw)
        return [
            None if join_ref is None else names.setdefault(join_ref, f"ref{len(names) + 1}"),
            None if ref is None else names.setdefault(ref, f"ref{len(names) + 1}"),
            topic,
            event,
            payload,
        ]

    posts = [e for e in exchanges if e.method == "POST"]
    sent = [(e.content_type, [frame(line) for line in e.body.decode().split("\n")]) for e in posts]
    received = []
    for exchange in exchanges:
        if exchange.method == "GET" and exchange.answer:
            for message in json.loads(exchange.answer).get("messages", []):
                decoded = frame(message)
                if decoded[3] not in PRESENCE_EVENTS:
                    received.append(decoded)
    gets = sorted({(e.target, e.content_type, e.body) for e in exchanges if e.method == "GET"})
    return {"posts": sent, "received": received, "gets": gets, "post_targets": sorted({e.target for e in posts})}


def test_python_client_and_phoenix_js_long_poll_the_same_way(reference_app: RunningApp) -> None:
    require_js()

    async def record(scenario: Callable[[str, str], Awaitable[Any]]) -> list[HttpExchange]:
        exchanges: list[HttpExchange] = []
        tasks: set[asyncio.Task[None]] = set()
        server = await http_relay(reference_app, exchanges, tasks)
        try:
            port = server.sockets[0].getsockname()[1]
            await scenario(f"ws://127.0.0.1:{port}/socket", "longpoll")
        finally:
            server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()
        return exchanges

    async def main() -> list[list[HttpExchange]]:
        alight_js = functools.partial(js_scenario, client="alight", app_host=reference_app.host)
        return [await record(python_scenario), await record(js_scenario), await record(alight_js)]

    python, phoenix, alight_js = asyncio.run(asyncio.wait_for(main(), 60 * UNIT), debug=True)
    ours, theirs = normalised_longpoll(python), normalised_longpoll(phoenix)
    assert normalised_longpoll(alight_js) == theirs  # alight.js too
    base = "/socket/longpoll?user_id=side&vsn=2.0.0&"
    assert ours["gets"] == theirs["gets"] == [(base, None, b""), (base + "token=T", None, b"")]
    assert ours["post_targets"] == theirs["post_targets"] == [base + "token=T"]
    assert ours["posts"] == theirs["posts"]
    events = [frame[3] for _, frames in ours["posts"] for frame in frames]
    assert events == ["phx_join", "ping", "push_me", "error_reply", "async", "nope"]
    assert {content_type for content_type, _ in ours["posts"]} == {"application/x-ndjson"}
    assert ours["received"] == theirs["received"]
    assert [m[3] for m in ours["received"]][:3] == ["phx_reply", "phx_reply", "pushed"]
