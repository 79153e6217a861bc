"""The Python client and the official phoenix.js, side by side on the wire.

One scenario (tests/js/side_by_side.js has the phoenix.js side): connect with
``user_id=side``, join ``room:side``, push ``ping``, ``push_me`` (and wait for
``pushed``), ``error_reply``, ``async``, an unknown event, a binary payload, leave,
disconnect. Each client runs it through a relay between it and the reference app that
records every frame in both directions, the request path and query, and the close code
the client sent. After normalising refs (each distinct ``ref``/``join_ref`` becomes its
order of first appearance) the frames the two clients sent are the same, in the same
order, and so are the server's answers up to the leave (presence events aside: their
``phx_ref``s and their order relative to the join reply are the server's, not the
client's; and the answers to the leave race the client's close that follows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from dataclasses import dataclass, field
from typing import Any

from alight.client import Socket

from ..conftest import UNIT
from .conftest import JS_DIR, RunningApp, require_js
from .test_python_client import WAIT

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
    """A V2 frame as a list: JSON arrays as they are, a client binary push (PROTOCOL.md
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


async def python_scenario(url: str) -> dict[str, Any]:
    replies: dict[str, Any] = {}
    socket = Socket(url, params={"user_id": "side"})
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
    replies["binary"] = await channel.push("binary", bytes([1, 2, 3]))
    await channel.leave()
    await socket.disconnect()
    return replies


async def phoenix_scenario(url: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        require_js(),
        "side_by_side.js",
        url,
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


def test_python_client_and_phoenix_js_send_the_same_frames(reference_app: RunningApp) -> None:
    require_js()

    async def main() -> tuple[Recording, Recording]:
        recordings: list[Recording] = []
        finished: asyncio.Queue[Recording] = asyncio.Queue()
        async with await relay(reference_app, recordings, finished) as server:
            port = server.sockets[0].getsockname()[1]
            url = f"ws://127.0.0.1:{port}/socket"
            await python_scenario(url)
            python = await asyncio.wait_for(finished.get(), WAIT)
            await phoenix_scenario(url)
            phoenix = await asyncio.wait_for(finished.get(), WAIT)
        assert recordings == [python, phoenix]
        return python, phoenix

    python, phoenix = asyncio.run(asyncio.wait_for(main(), 40 * UNIT), debug=True)
    assert python.path == phoenix.path == "/socket/websocket?user_id=side&vsn=2.0.0"
    ours, theirs = normalised(python), normalised(phoenix)
    assert ours["client"] == theirs["client"]
    assert ours["server"] == theirs["server"]
    events = [frame[3] for frame in ours["client"]]
    assert events == ["phx_join", "ping", "push_me", "error_reply", "async", "nope", "binary", "phx_leave"]
    answers = [(frame[3], frame[4].get("status")) for frame in ours["server"]]
    assert answers[:3] == [("phx_reply", "ok"), ("phx_reply", "ok"), ("pushed", None)]
    assert len(answers) == 8
    # The one difference on the wire: the close frame. phoenix.js's disconnect() closes
    # without a status code (the server sees 1005); the Python client says 1000 (normal
    # closure). Both are a clean close to the server.
    assert python.client_close == (1000, "")
    assert phoenix.client_close == (1005, "")
