"""The native HTTP/1.1 server, over real sockets on 127.0.0.1.

`EchoEndpoint` is a tiny `ServerHooks`: a few HTTP routes and an echo socket process
(also used by ``test_websocket_conn.py``).
"""

from __future__ import annotations

import asyncio

from testkit import UNIT, Runner
from testkit.echo_server import TIMEOUT, EchoEndpoint, serving

from alight.actors import Node
from alight.transports.base import TransportStats
from alight.transports.listener import listener_stats
from alight.transports.server import ServerConfig


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a content-length: status, headers, body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), TIMEOUT)
    return status, headers, body


async def exchange(port: int, data: bytes, responses: int = 1) -> list[tuple[int, dict[str, str], bytes]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return [await read_response(reader) for _ in range(responses)]
    finally:
        writer.close()
        await writer.wait_closed()


async def at_eof(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), TIMEOUT) == b""


def test_get_post_404_and_keep_alive(run: Runner, node: Node) -> None:
    async def main() -> None:
        async with serving(EchoEndpoint(node)) as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert await read_response(reader) == (
                200,
                {"content-type": "text/plain; charset=utf-8", "content-length": "5"},
                b"hello",
            )
            writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
            status, _, body = await read_response(reader)
            assert (status, body) == (200, b"abc")
            writer.write(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n")
            assert (await read_response(reader))[2] == b"abc"
            writer.write(b"GET /nope HTTP/1.1\r\n\r\n")
            assert (await read_response(reader))[0] == 404
            writer.write(b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n")
            status, headers, _ = await read_response(reader)
            assert (status, headers["connection"]) == (200, "close")
            assert await at_eof(reader)
            writer.close()

    run(main)


def test_pipelined_requests_are_answered_in_order(run: Runner, node: Node) -> None:
    async def main() -> None:
        async with serving(EchoEndpoint(node)) as (port, _):
            requests = b"".join(b"GET /query?n=%d HTTP/1.1\r\n\r\n" % i for i in range(40))
            answers = await exchange(port, requests, 40)
            assert [body for _, _, body in answers] == [b"n=%d" % i for i in range(40)]

    run(main)


def test_limits_and_malformed_requests(run: Runner, node: Node) -> None:
    async def main() -> None:
        config = ServerConfig(max_body_size=100, max_header_size=1000)
        stats = TransportStats()
        async with serving(EchoEndpoint(node), config, stats) as (port, _):
            for request, status in [
                (b"POST /echo HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 413),
                (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n" + b"x" * 101 + b"\r\n", 413),
                (b"GET /hello HTTP/1.1\r\nX-Big: " + b"y" * 1000 + b"\r\n\r\n", 431),
                (b"GET /" + b"z" * 1001 + b" HTTP/1.1\r\n\r\n", 414),
                (b"GARBAGE\r\n\r\n", 400),
                (b"GET /socket/websocket HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            ]:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request)
                got, headers, body = await read_response(reader)
                assert (got, body, headers.get("connection")) == (status, b"", "close"), request
                assert await at_eof(reader)
                writer.close()
            assert stats.bad_requests == 6

    run(main)


def test_a_crashing_handler_is_a_500_and_a_counted_crash(run: Runner, node: Node) -> None:
    async def main() -> None:
        async with serving(EchoEndpoint(node)) as (port, pid):
            answers = await exchange(port, b"GET /crash HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n", 2)
            assert [status for status, _, _ in answers] == [500, 200]
            stats = await listener_stats(pid)
            assert (stats.request_crashes, stats.requests) == (1, 2)
            assert node.crashes == 1

    run(main)


def test_an_idle_keep_alive_connection_is_closed(run: Runner, node: Node) -> None:
    async def main() -> None:
        async with serving(EchoEndpoint(node), ServerConfig(keep_alive_timeout=0.2 * UNIT)) as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /hello HTTP/1.1\r\n\r\n")
            assert (await read_response(reader))[0] == 200
            assert await at_eof(reader)
            writer.close()

    run(main)


def test_stop_closes_idle_connections_and_the_port(run: Runner, node: Node) -> None:
    async def main() -> None:
        stats = TransportStats()
        async with serving(EchoEndpoint(node), stats=stats) as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /hello HTTP/1.1\r\n\r\n")
            assert (await read_response(reader))[0] == 200
        assert await at_eof(reader)
        writer.close()
        assert stats.connections == 0
        try:
            _, refused_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        refused_writer.close()
        raise AssertionError("the listener still accepts")

    run(main)
