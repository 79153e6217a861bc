"""WebSocketConn over real sockets: websockets' asyncio client and raw sockets
against the native server with the echo endpoint of ``test_http_server.py``."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct

import orjson
import pytest
from testkit import UNIT, Runner
from testkit.echo_server import TIMEOUT, EchoEndpoint, serving
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.speedups import apply_mask

from alight.actors import Node
from alight.actors.gen_server import stop
from alight.transports.base import TransportClosed, TransportStats
from alight.transports.listener import HttpListener, listener_port
from alight.transports.server import ServerConfig


def url(port: int, query: str = "vsn=2.0.0") -> str:
    return f"ws://127.0.0.1:{port}/socket/websocket?{query}"


async def closed_with(endpoint: EchoEndpoint) -> TransportClosed:
    _, message = await asyncio.wait_for(endpoint.closings.get(), TIMEOUT)
    return message


async def wait_closed(ws: ClientConnection) -> None:
    await asyncio.wait_for(ws.wait_closed(), TIMEOUT)


def test_echo_text_and_binary_ping_and_client_close(run: Runner, node: Node) -> None:
    async def main() -> None:
        endpoint = EchoEndpoint(node)
        stats = TransportStats()
        async with serving(endpoint, stats=stats) as (port, _):
            async with connect(url(port), ping_interval=None) as ws:
                await ws.send("héllo")
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "héllo"
                await ws.send(b"\x00\x01\xff")
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == b"\x00\x01\xff"
                big = os.urandom(200_000)
                await ws.send([big[:100_000], big[100_000:]])  # a fragmented message
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == big
                pong = await ws.ping(b"are you there")
                await asyncio.wait_for(pong, TIMEOUT)
                assert stats.websockets == 1
                await ws.close(4001, "done")
            assert ws.close_code == 4001  # echoed (RFC 6455 §5.5.1)
            assert await closed_with(endpoint) == TransportClosed("closed: done", 4001)
            assert (stats.frames_in, stats.frames_out) == (3, 3)
        assert stats.websockets == 0
        assert [len(closings) for closings in endpoint.closed.values()] == [1]

    run(main)


def test_server_close_refusal_and_subprotocol(run: Runner, node: Node) -> None:
    async def main() -> None:
        endpoint = EchoEndpoint(node)
        async with serving(endpoint) as (port, _):
            async with connect(url(port), ping_interval=None) as ws:
                assert ws.subprotocol is None
                await ws.send("close")
                await wait_closed(ws)
            assert (ws.close_code, ws.close_reason) == (4000, "bye")
            assert await closed_with(endpoint) == TransportClosed("bye", 4000)

            with pytest.raises(InvalidStatus) as refused:
                await connect(url(port, "token=bad&vsn=2.0.0"), ping_interval=None)
            assert refused.value.response.status_code == 403
            assert refused.value.response.body == b""

            token = base64.b64encode(b"s3cret!").decode().rstrip("=")
            offer = ["phoenix", f"base64url.bearer.phx.{token}"]
            async with connect(url(port), subprotocols=offer, ping_interval=None) as ws:  # type: ignore[arg-type]
                assert ws.subprotocol == "phoenix"
                await ws.send("info")
                info = orjson.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                assert info["auth_token"] == "s3cret!"
                assert info["uri"] == f"http://127.0.0.1:{port}/socket/websocket?vsn=2.0.0"
                assert info["peer"][0] == "127.0.0.1"
        assert all(len(closings) == 1 for closings in endpoint.closed.values())
        assert len(endpoint.closed) == 2

    run(main)


@pytest.mark.parametrize(
    ("config", "send", "code"),
    [
        (ServerConfig(), b"\xff\xfe", 1007),
        (ServerConfig(max_frame_size=1000), b"x" * 1001, 1009),
        (ServerConfig(idle_timeout=0.2 * UNIT), None, 1002),
    ],
    ids=["invalid-utf8", "oversize", "idle-timeout"],
)
def test_protocol_errors_close_with_their_code(
    run: Runner, node: Node, config: ServerConfig, send: bytes | None, code: int
) -> None:
    async def main() -> None:
        endpoint = EchoEndpoint(node)
        async with serving(endpoint, config) as (port, _):
            async with connect(url(port), ping_interval=None, max_size=None) as ws:
                if send is not None:
                    await ws.send(send, text=True)
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert ws.close_code == code
            assert (await closed_with(endpoint)).code == code

    run(main)


async def raw_websocket(port: int, rcvbuf: int) -> socket.socket:
    """A raw client socket with a tiny receive buffer, past its handshake."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await asyncio.wait_for(loop.sock_recv(sock, 1), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101 ")
    return sock


def masked(opcode: int, data: bytes) -> bytes:
    mask = os.urandom(4)
    return bytes((0x80 | opcode, 0x80 | len(data))) + mask + apply_mask(data, mask)


def test_a_flooding_client_only_fills_its_own_window_until_credits_come_back(run: Runner, node: Node) -> None:
    """Inbound back-pressure by credits: with the socket process busy, the server stops
    reading once ``max_inbound_queue`` frames are in flight (the mailbox does not grow
    with the flood), and reads on as the socket process hands credits back."""

    async def main() -> None:
        endpoint = EchoEndpoint(node)
        sent = 2_000
        async with (
            serving(endpoint, ServerConfig(max_inbound_queue=20)) as (port, _),
            connect(url(port), ping_interval=None, max_queue=None) as ws,
        ):
            await ws.send("hold")
            socket_pid = await asyncio.wait_for(endpoint.holding.get(), TIMEOUT)
            for number in range(sent):
                await ws.send(f"{number:04d}" + "x" * 1020)
            proc = node.lookup(socket_pid)
            assert proc is not None
            deadline = asyncio.get_running_loop().time() + TIMEOUT
            while len(proc) <= 20:  # the server reads what the kernel holds, then pauses
                assert asyncio.get_running_loop().time() < deadline, len(proc)
                await asyncio.sleep(0.01)
            # Nothing more is read while the socket process hands no credit back:
            # bounded by the limit plus what one read from the kernel carries (uvloop
            # reads up to 256 KiB: 1 KiB frames), not by the 2,000 frames of the flood.
            await asyncio.sleep(0.3 * UNIT)
            held = len(proc)
            node.send(socket_pid, "release")
            assert held <= 20 + 256, held
            echoed = [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in range(sent)]
            assert [str(frame)[:4] for frame in echoed] == [f"{number:04d}" for number in range(sent)]

    run(main)


def test_a_slow_consumer_is_closed_with_1008_and_counted(run: Runner, node: Node) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        endpoint = EchoEndpoint(node)
        stats = TransportStats()
        config = ServerConfig(max_buffer=64 * 1024)
        async with serving(endpoint, config, stats) as (port, _):
            async with connect(url(port), ping_interval=None) as healthy:
                slow = await raw_websocket(port, 4096)
                # 16 MiB in 16 KiB frames: far past every kernel buffer and max_buffer.
                await loop.sock_sendall(slow, masked(0x1, b"flood:1024:16384"))
                assert await closed_with(endpoint) == TransportClosed("slow consumer", 1008)
                assert stats.slow_consumer_disconnects == 1
                await healthy.send("still here")
                assert await asyncio.wait_for(healthy.recv(), TIMEOUT) == "still here"
                # Read what was queued: it ends with the close frame.
                close = b"\x88\x0f" + struct.pack("!H", 1008) + b"slow consumer"
                received = bytearray()
                while not received.endswith(close):
                    chunk = await asyncio.wait_for(loop.sock_recv(slow, 1 << 20), TIMEOUT)
                    assert chunk, "the connection ended before the close frame"
                    received += chunk
                assert len(received) < 16 * 1024 * 1024
                await loop.sock_sendall(slow, masked(0x8, struct.pack("!H", 1008)))
                assert await asyncio.wait_for(loop.sock_recv(slow, 1024), TIMEOUT) == b""
                slow.close()
            assert [len(closings) for closings in endpoint.closed.values()] == [1, 1]

    run(main)


def test_listener_stop_closes_websockets_with_1012(run: Runner, node: Node) -> None:
    async def main() -> None:
        endpoint = EchoEndpoint(node)
        pid = await HttpListener.start_link(endpoint, port=0)
        port = await listener_port(pid)
        ws = await connect(url(port), ping_interval=None)
        socket_pid = next(iter(endpoint.closed))
        await stop(pid, timeout=TIMEOUT)
        await wait_closed(ws)
        assert ws.close_code == 1012
        # The socket process was told to exit "shutdown" (it does not trap exits).
        assert node.lookup(socket_pid) is None

    run(main)
