"""Authenticated, encrypted ZeroMQ sockets for node-to-node links (CurveZMQ + ZAP).

Every node has one ROUTER *server* socket (`server_socket`) that its peers' DEALER
*client* sockets (`client_socket`) connect to. All of them use the cluster keypair
(`_keys`): a client checks the server with ``curve_serverkey`` and the server's ZAP
handler (`ZapHandler`) admits only clients that present the cluster public key, which
CURVE makes them prove they hold the secret key for. A peer without the cluster secret
cannot finish the handshake, so libzmq never hands one of its frames to the application
and nothing it sends is ever unpickled. Both directions are encrypted.

Why a ZAP handler at all: without one, libzmq admits *any* CURVE client that knows the
server's public key, whatever its own keypair. The server socket also sets
``ZMQ_ZAP_ENFORCE_DOMAIN``, so that if the handler is missing or closed, handshakes
fail instead of being admitted (fail closed).

Why this handler rather than ``zmq.auth``: the ZAP exchange is a few frames on an
inproc ROUTER, driven here by the event loop's readiness callback on the socket's FD,
as every other cluster socket is (sync sockets drained in batches; ``zmq.asyncio`` is
3-13x slower). ``zmq.auth.thread.ThreadAuthenticator`` would add a thread per node
whose failures happen out of sight; ``zmq.auth.asyncio.AsyncioAuthenticator`` needs a
``zmq.asyncio`` context and a certificate directory or callback object for a decision
that is one comparison. The decision itself is the pure function `zap_reply`. The one
trade-off: handshakes wait while the node's event loop is blocked.

Cluster ports bind to ``127.0.0.1`` (`DEFAULT_HOST`) unless a host is given; binding
elsewhere exposes only the handshake, never the decoder.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import zmq

from ._codec import DEFAULT_MAX_FRAME
from ._keys import ClusterKeys
from .address import DEFAULT_HOST, tcp_address

__all__ = [
    "DEFAULT_HOST",
    "USER_ID",
    "ZAP_DOMAIN",
    "ZAP_ENDPOINT",
    "ZapHandler",
    "ZapStatistics",
    "bind",
    "client_socket",
    "configure_client",
    "configure_server",
    "server_socket",
    "zap_reply",
]

logger = logging.getLogger("alight.cluster")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
"""The endpoint libzmq sends ZAP requests to (RFC 27); one handler per context."""

ZAP_DOMAIN = "alight.cluster"
"""The ZAP domain of cluster server sockets."""

USER_ID = "alight.cluster"
"""The ZAP user id of an admitted peer: a received frame's ``User-Id`` property."""

ZAP_BATCH = 64
"""At most this many ZAP requests are answered per readiness callback; the rest are
answered on the next loop iteration, so a burst of handshakes cannot starve the loop."""


@dataclass(slots=True)
class ZapStatistics:
    """Counters of a `ZapHandler`: peers admitted, peers refused (wrong key or
    mechanism) and malformed requests."""

    accepted: int = 0
    refused: int = 0
    malformed: int = 0


def zap_reply(request: Sequence[bytes], public_raw: bytes) -> list[bytes]:
    """Answer one ZAP request (the frames after the routing envelope): ``200`` if the
    peer is a CURVE client presenting ``public_raw`` (the cluster's 32-byte public
    key), ``400`` otherwise, ``500`` if the request is malformed. Pure."""
    if len(request) < 6 or request[0] != b"1.0":
        request_id = request[1] if len(request) > 1 else b""
        return [b"1.0", request_id, b"500", b"malformed ZAP request", b"", b""]
    _version, request_id, _domain, _address, _identity, mechanism, *credentials = request
    if mechanism == b"CURVE" and len(credentials) == 1 and hmac.compare_digest(credentials[0], public_raw):
        return [b"1.0", request_id, b"200", b"OK", USER_ID.encode(), b""]
    return [b"1.0", request_id, b"400", b"not a member of this cluster", b"", b""]


class ZapHandler:
    """The ZAP handler of one ZeroMQ context: admits only the cluster's key.

    Create it before the server socket binds, `attach` it to the event loop that owns
    the context's sockets, and `close` it after the server socket. One per context
    (binding a second raises ``zmq.ZMQError``)."""

    def __init__(self, context: zmq.Context[Any], keys: ClusterKeys) -> None:
        self._public_raw = keys.public_raw
        self._stats = ZapStatistics()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._socket: zmq.Socket[Any] = context.socket(zmq.ROUTER)
        self._socket.linger = 0
        self._fd = int(self._socket.fd)
        try:
            self._socket.bind(ZAP_ENDPOINT)
        except zmq.ZMQError:
            self._socket.close()
            raise

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Answer requests from ``loop``'s readiness callback on the socket's FD."""
        self._loop = loop
        loop.add_reader(self._fd, self.handle_ready)
        # The FD is edge-triggered: requests queued before now would never signal it.
        loop.call_soon(self.handle_ready)

    def handle_ready(self) -> int:
        """Answer the pending ZAP requests (at most `ZAP_BATCH`); return how many.

        Called by the loop when the FD is readable; callable directly without a loop."""
        if self._socket.closed:
            return 0
        handled = 0
        while handled < ZAP_BATCH:
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return handled
            handled += 1
            self._answer(frames)
        if self._loop is not None:  # more may be queued: the edge will not fire again
            self._loop.call_soon(self.handle_ready)
        return handled

    def _answer(self, frames: list[bytes]) -> None:
        try:
            split = frames.index(b"")
        except ValueError:
            self._stats.malformed += 1
            return  # no envelope: nobody to answer
        envelope, request = frames[:split], frames[split + 1 :]
        reply = zap_reply(request, self._public_raw)
        status = reply[2]
        if status == b"200":
            self._stats.accepted += 1
        elif status == b"400":
            self._stats.refused += 1
            address = request[3].decode(errors="replace")
            logger.warning("cluster: refused a peer from %s (mechanism %r)", address, request[5])
        else:
            self._stats.malformed += 1
        self._socket.send_multipart([*envelope, b"", *reply], zmq.NOBLOCK)

    def statistics(self) -> ZapStatistics:
        """A snapshot of the handler's counters."""
        return replace(self._stats)

    def close(self) -> None:
        """Stop answering; later handshakes on this context fail (fail closed)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        self._loop = None
        self._socket.close()


def configure_server(socket: zmq.Socket[Any], keys: ClusterKeys, *, max_size: int = DEFAULT_MAX_FRAME) -> None:
    """Make ``socket`` a CURVE server with the cluster keys, under ZAP (fail closed),
    dropping any message over ``max_size`` bytes. Call before it binds."""
    socket.curve_server = True
    socket.curve_secretkey = keys.secret
    socket.curve_publickey = keys.public
    socket.zap_domain = ZAP_DOMAIN.encode()
    socket.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
    socket.maxmsgsize = max_size


def configure_client(socket: zmq.Socket[Any], keys: ClusterKeys, *, max_size: int = DEFAULT_MAX_FRAME) -> None:
    """Make ``socket`` a CURVE client of cluster servers, dropping any message over
    ``max_size`` bytes. Call before it connects."""
    socket.curve_serverkey = keys.public
    socket.curve_publickey = keys.public
    socket.curve_secretkey = keys.secret
    socket.maxmsgsize = max_size


def bind(socket: zmq.Socket[Any], host: str = DEFAULT_HOST, port: int = 0) -> str:
    """Bind ``socket`` on TCP ``host:port`` (port 0: a free port) and return its
    address, ``tcp://host:port`` (``[host]`` for IPv6)."""
    if ":" in host:
        socket.ipv6 = True
    base = tcp_address(host, 0).rsplit(":", 1)[0]
    if port == 0:
        port = socket.bind_to_random_port(base)
    else:
        socket.bind(f"{base}:{port}")
    return f"{base}:{port}"


def server_socket(
    context: zmq.Context[Any],
    keys: ClusterKeys,
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    max_size: int = DEFAULT_MAX_FRAME,
) -> tuple[zmq.Socket[Any], str]:
    """A bound cluster ROUTER socket (linger 0) and its address. The context needs an
    attached `ZapHandler`, or no peer gets in. Raises ``zmq.ZMQError`` if it cannot bind."""
    socket: zmq.Socket[Any] = context.socket(zmq.ROUTER)
    socket.linger = 0
    try:
        configure_server(socket, keys, max_size=max_size)
        address = bind(socket, host, port)
    except zmq.ZMQError:
        socket.close()
        raise
    return socket, address


def client_socket(
    context: zmq.Context[Any],
    keys: ClusterKeys,
    address: str,
    *,
    routing_id: bytes | None = None,
    max_size: int = DEFAULT_MAX_FRAME,
) -> zmq.Socket[Any]:
    """A cluster DEALER socket (linger 0) connecting to ``address``; ``routing_id`` is
    how the peer's ROUTER will name this link (e.g. the node's name)."""
    socket: zmq.Socket[Any] = context.socket(zmq.DEALER)
    socket.linger = 0
    if routing_id is not None:
        socket.routing_id = routing_id
    configure_client(socket, keys, max_size=max_size)
    socket.connect(address)
    return socket
