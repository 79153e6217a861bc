"""WebSocket clients below the websockets library: raw frames, for input no client would send."""

from __future__ import annotations

import base64
import os
import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from testkit import UNIT
from testkit.processes import RunningApp

TIMEOUT = 5 * UNIT
"""Seconds a raw read or connect may take."""


def closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Read until the server closes (bounded); the close code and reason."""
    deadline = time.monotonic() + TIMEOUT
    with pytest.raises(ConnectionClosed):  # noqa: PT012 - frames may come first
        while time.monotonic() < deadline:
            ws.recv(max(0.0, deadline - time.monotonic()))
    return ws.close_code, ws.close_reason


def raw_websocket(app: RunningApp, query: str = "vsn=2.0.0") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", app.port), timeout=TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /socket/websocket?{query} HTTP/1.1\r\nHost: {app.host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed during the handshake: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    assert head.endswith(b"\r\n\r\n"), "the server sent a frame unasked"
    return sock


def read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "connection closed mid-frame"
        data += chunk
    return data
