"""CurveZMQ + ZAP on real sockets (tcp://127.0.0.1, random ports): a peer without the
cluster secret never gets a frame to the application; a peer with it does.

The ZAP handler runs on the test's event loop, as on a node. Waits are for events
(a frame, a handshake-failure event from the server's socket monitor), each bounded by
a multiple of UNIT; the only timed waits are the bounded checks that nothing arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import zmq
from testkit import UNIT
from zmq.utils.monitor import recv_monitor_message

from alight.cluster._auth import DEFAULT_HOST, USER_ID, ZapHandler, client_socket, server_socket
from alight.cluster._keys import ClusterKeys, derive_keys

KEYS = derive_keys("the cluster secret, 32 bytes ok")
WRONG = derive_keys("not the cluster secret, 32 bytes")
FAILED = zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
QUIET = 0.3 * UNIT
"""How long 'nothing arrives' is checked for, once the refusal has been observed."""


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(main(), debug=True)  # type: ignore[arg-type]


async def wait_readable(sock: zmq.Socket[Any], timeout: float) -> None:
    """Wait until ``sock`` has a message, from the loop's readiness callback on its
    (edge-triggered) FD; raises TimeoutError after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    fd = int(sock.fd)
    loop.add_reader(fd, ready.set)
    try:
        async with asyncio.timeout(timeout):
            while True:
                ready.clear()
                if int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                    return
                await ready.wait()
    finally:
        loop.remove_reader(fd)


async def recv_frames(sock: zmq.Socket[Any], timeout: float = 5 * UNIT) -> list[zmq.Frame]:
    await wait_readable(sock, timeout)
    return sock.recv_multipart(zmq.NOBLOCK, copy=False)


async def nothing_within(sock: zmq.Socket[Any], timeout: float) -> bool:
    try:
        await wait_readable(sock, timeout)
    except TimeoutError:
        return True
    return False


async def wait_handshake_failure(monitor: zmq.Socket[Any]) -> int:
    while True:
        await wait_readable(monitor, 5 * UNIT)
        event = recv_monitor_message(monitor, zmq.NOBLOCK)
        if event["event"] & FAILED:
            return int(event["event"])


@asynccontextmanager
async def cluster_server(*, zap: bool = True) -> AsyncIterator[tuple[zmq.Context[Any], zmq.Socket[Any], str, Any]]:
    """A context with (optionally) an attached ZAP handler and a bound server socket;
    yields (context, server, address, handler); closes everything."""
    ctx: zmq.Context[Any] = zmq.Context()
    handler = ZapHandler(ctx, KEYS) if zap else None
    if handler is not None:
        handler.attach(asyncio.get_running_loop())
    server, address = server_socket(ctx, KEYS)
    try:
        yield ctx, server, address, handler
    finally:
        server.close()
        if handler is not None:
            handler.close()
        ctx.destroy(linger=0)


def impostor(ctx: zmq.Context[Any], address: str, keys: ClusterKeys, *, serverkey: bytes) -> zmq.Socket[Any]:
    sock: zmq.Socket[Any] = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.curve_serverkey = serverkey
    sock.curve_publickey = keys.public
    sock.curve_secretkey = keys.secret
    sock.connect(address)
    return sock


def test_binds_to_loopback_by_default() -> None:
    async def main() -> None:
        async with cluster_server() as (_, _server, address, _):
            assert address.startswith(f"tcp://{DEFAULT_HOST}:")
            assert DEFAULT_HOST == "127.0.0.1"

    run(main)


def test_a_member_frame_arrives_authenticated_and_both_ways() -> None:
    async def main() -> None:
        async with cluster_server() as (ctx, server, address, handler):
            client = client_socket(ctx, KEYS, address, routing_id=b"b@127.0.0.1")
            client.send(b"hello")
            routing_id, frame = await recv_frames(server)
            assert routing_id.bytes == b"b@127.0.0.1"
            assert frame.bytes == b"hello"
            assert frame.get("User-Id") == USER_ID
            server.send_multipart([routing_id.bytes, b"welcome"])
            (reply,) = await recv_frames(client)
            assert reply.bytes == b"welcome"
            assert handler.statistics().accepted == 1
            client.close()

    run(main)


def test_a_peer_with_the_wrong_secret_never_delivers_a_frame() -> None:
    async def main() -> None:
        async with cluster_server() as (ctx, server, address, _):
            monitor = server.get_monitor_socket(FAILED)
            wrong = client_socket(ctx, WRONG, address, routing_id=b"intruder")
            send_if_possible(wrong, b"from the intruder")
            await wait_handshake_failure(monitor)
            right = client_socket(ctx, KEYS, address, routing_id=b"member")
            right.send(b"from a member")
            routing_id, frame = await recv_frames(server)
            assert (routing_id.bytes, frame.bytes) == (b"member", b"from a member")
            assert await nothing_within(server, QUIET)
            for sock in (wrong, right, monitor):
                sock.close()

    run(main)


def test_a_peer_that_knows_the_public_key_but_not_the_secret_is_refused_by_zap() -> None:
    async def main() -> None:
        async with cluster_server() as (ctx, server, address, handler):
            monitor = server.get_monitor_socket(FAILED)
            wrong = impostor(ctx, address, WRONG, serverkey=KEYS.public)
            send_if_possible(wrong, b"from the impostor")
            assert await wait_handshake_failure(monitor) == zmq.EVENT_HANDSHAKE_FAILED_AUTH
            assert handler.statistics().refused >= 1
            assert handler.statistics().accepted == 0
            assert await nothing_within(server, QUIET)
            for sock in (wrong, monitor):
                sock.close()

    run(main)


def send_if_possible(sock: zmq.Socket[Any], data: bytes) -> None:
    """Queue ``data`` without blocking: a socket whose handshake is refused has no peer,
    and a blocking send would wait for one for ever (the test waits on the monitor)."""
    with contextlib.suppress(zmq.Again):
        sock.send(data, zmq.NOBLOCK)


def test_a_plain_peer_is_refused() -> None:
    async def main() -> None:
        async with cluster_server() as (ctx, server, address, _):
            monitor = server.get_monitor_socket(FAILED)
            plain: zmq.Socket[Any] = ctx.socket(zmq.DEALER)
            plain.linger = 0
            plain.connect(address)
            send_if_possible(plain, b"no security at all")
            await wait_handshake_failure(monitor)
            assert await nothing_within(server, QUIET)
            for sock in (plain, monitor):
                sock.close()

    run(main)


def test_without_a_zap_handler_even_a_member_is_refused() -> None:
    """Fail closed: ZMQ_ZAP_ENFORCE_DOMAIN refuses handshakes when no handler answers."""

    async def main() -> None:
        async with cluster_server(zap=False) as (ctx, server, address, _):
            monitor = server.get_monitor_socket(FAILED)
            right = client_socket(ctx, KEYS, address)
            send_if_possible(right, b"too early")
            await wait_handshake_failure(monitor)
            assert await nothing_within(server, QUIET)
            for sock in (right, monitor):
                sock.close()

    run(main)
