"""An orderly stop drains (`alight.channels.drainer`): presence leaves the cluster at once,
then the connections close in batches, and no new connection is accepted meanwhile.

Two nodes (`testkit.apps.app_node`, OS processes); node b drains in batches of 2, one
unit of time apart. Clients are raw Phoenix V2 WebSockets on b (threads record when and
how each was closed) and a long-poll session on b.
"""

from __future__ import annotations

import itertools
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from testkit import UNIT
from testkit.cluster import WAIT, AppNode, app_pair, wait_for
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

pytestmark = pytest.mark.slow  # OS processes: not in the fast lane

TOPIC = "room:drain"
BATCH = 2
INTERVAL = 1.0 * UNIT
CLIENTS = 5  # batches of 2, 2 and 1 (and the long-poll session in the last)


class Client(threading.Thread):
    """A joined WebSocket client that reads until its connection closes."""

    def __init__(self, node: AppNode, user: str) -> None:
        super().__init__(daemon=True)
        self.url = f"ws://{node.host}/socket/websocket?vsn=2.0.0&user_id={user}"
        self.closed_at = 0.0
        self.code: int | None = None
        self.joined = threading.Event()

    def run(self) -> None:
        with connect(self.url, open_timeout=WAIT, ping_interval=None) as ws:
            ws.send(json.dumps(["1", "1", TOPIC, "phx_join", {"device": "drain"}]))
            try:
                while True:  # bounded: the recv timeout, and the drain closes it
                    message = json.loads(ws.recv(timeout=30 * UNIT))
                    if message[3] == "phx_reply" and message[1] == "1":
                        self.joined.set()
            except ConnectionClosed as closed:
                self.closed_at = time.monotonic()
                self.code = closed.rcvd.code if closed.rcvd is not None else None


@pytest.fixture
def pair() -> Iterator[tuple[AppNode, AppNode]]:
    with app_pair(env_b={"ALIGHT_TEST_DRAIN": f"{BATCH},{INTERVAL}"}) as nodes:
        yield nodes


def _read_until_close_frame(sock: socket.socket) -> bytes:
    """What the server sent, up to its first close frame after the 101 (bounded by the
    socket's timeout: the server then waits for our close, which never comes)."""
    data = b""
    with sock:
        while not (b"\r\n\r\n" in data and b"\x88" in data.partition(b"\r\n\r\n")[2][:1]):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def _longpoll_session(node: AppNode) -> str:
    created: dict[str, Any] = node.request("GET", "/socket/longpoll?vsn=2.0.0&user_id=lp")
    token: str = created["token"]
    body = json.dumps(["1", "1", TOPIC, "phx_join", {"device": "lp"}]).encode()
    path = f"/socket/longpoll?vsn=2.0.0&user_id=lp&token={token}"
    assert node.request("POST", path, body, {"content-type": "application/x-ndjson"})["status"] == 200
    return token


def test_sigterm_drains_presence_first_then_connections_in_batches(pair: tuple[AppNode, AppNode]) -> None:
    a, b = pair
    clients = [Client(b, f"u{i}") for i in range(CLIENTS)]
    for client in clients:
        client.start()
        assert client.joined.wait(WAIT)
    token = _longpoll_session(b)
    everyone = sorted([*(f"u{i}" for i in range(CLIENTS)), "lp"])
    wait_for("every presence on a", lambda: a.presence(TOPIC) == everyone)
    # A connection accepted before the drain, upgrading after it began: not in any batch.
    late = socket.create_connection((b.ip, b.http_port), timeout=WAIT)
    late.sendall(
        f"GET /socket/websocket?vsn=2.0.0&user_id=late HTTP/1.1\r\nHost: {b.host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n".encode()
    )

    b.signal(signal.SIGTERM)
    sent = time.monotonic()
    left = wait_for("b's presences leaving a", lambda: a.presence(TOPIC) == [], timeout=WAIT)
    # At once (a graceful permdown), not as the connections close: the last batch is
    # two intervals after the first.
    assert left < INTERVAL, left
    assert sum(client.closed_at == 0.0 for client in clients) >= 1
    # No new connection while b drains.
    with pytest.raises(ConnectionRefusedError), connect(f"ws://{b.host}/socket/websocket?vsn=2.0.0", open_timeout=WAIT):
        pass
    # The late upgrade completes, and is closed at once with "service restart".
    late.sendall(b"\r\n")
    upgraded = time.monotonic()
    answer = _read_until_close_frame(late)
    assert time.monotonic() - upgraded < 0.5 * INTERVAL  # at once, not with the node's stop
    assert answer.startswith(b"HTTP/1.1 101"), answer[:80]
    _, _, frames = answer.partition(b"\r\n\r\n")
    assert frames[:1] == b"\x88", frames[:20]  # a close frame,
    assert frames[2:4] == (1012).to_bytes(2, "big"), frames[:20]  # "service restart"

    for client in clients:
        client.join(WAIT)
    assert [client.code for client in clients] == [1012] * CLIENTS  # "service restart": clients reconnect
    closed = sorted(client.closed_at - sent for client in clients)
    batches = [closed[:2], closed[2:4], closed[4:]]
    for earlier, later in itertools.pairwise(batches):
        assert min(later) - max(earlier) >= 0.8 * INTERVAL, closed
    for batch in batches:
        assert max(batch) - min(batch) < 0.5 * INTERVAL, closed
    assert b.proc.wait(timeout=WAIT) == 0
    # The long-poll session ended with the last batch; its token is refused now by a.
    got = a.request("GET", f"/socket/longpoll?vsn=2.0.0&user_id=lp&token={token}")
    assert got["status"] == 410
