"""A WebSocket connection writes once per loop turn, whatever the number of frames:
the first frame of a turn at once, the rest held and written together next turn, in
order; a big burst goes out as it passes `COALESCE_LIMIT`; a close frame comes after
everything written before it; a paused (slow) client gets no coalescing.

The transport is a recording stand-in for uvloop's (what the connection calls on it);
the rest is the real `WebSocketConn` on a real node's loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from testkit import Runner

from alight.actors import Node, self_pid
from alight.transports.base import Frame, TransportStats
from alight.transports.server import ServerConfig
from alight.transports.websocket import COALESCE_LIMIT, Coalescer, WebSocketConn, encode_frame

OP_TEXT = 0x1


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.buffered = 0
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


def _open(node: Node, coalescer: Coalescer) -> tuple[WebSocketConn, RecordingTransport]:
    conn = WebSocketConn(node, ServerConfig(), TransportStats(), coalescer=coalescer)
    tcp = RecordingTransport()
    conn.accept(self_pid(), tcp, b"", lambda _: None)
    return conn, tcp


def _wire(text: bytes) -> bytes:
    return encode_frame(OP_TEXT, text)


def test_a_burst_costs_two_writes_in_order_and_a_lone_frame_one(run: Runner, node: Node) -> None:
    async def main() -> None:
        coalescer = Coalescer(node.loop)
        conn, tcp = _open(node, coalescer)
        other, other_tcp = _open(node, coalescer)
        frames = [Frame(b"m%d" % i) for i in range(10)]
        for frame in frames:
            conn.write(frame)
        other.write(frames[0])
        assert tcp.writes == [_wire(b"m0")]  # the first at once, the rest held
        await asyncio.sleep(0)  # the next loop turn
        await asyncio.sleep(0)
        assert tcp.writes == [_wire(b"m0"), b"".join(_wire(b"m%d" % i) for i in range(1, 10))]
        assert other_tcp.writes == [_wire(b"m0")]
        conn.write(frames[0])  # a new turn: direct again
        assert len(tcp.writes) == 3

    run(main)


def test_a_big_burst_goes_out_past_the_limit(run: Runner, node: Node) -> None:
    async def main() -> None:
        conn, tcp = _open(node, Coalescer(node.loop))
        big = Frame(b"x" * (COALESCE_LIMIT // 4))
        for _ in range(6):
            conn.write(big)
        # The first directly; the next four reach the limit and go together at once;
        # the sixth starts over (directly), as the first of a turn.
        assert [len(w) // len(big.wire or b"") for w in tcp.writes] == [1, 4, 1]

    run(main)


def test_a_close_frame_comes_after_what_was_written_before_it(run: Runner, node: Node) -> None:
    async def main() -> None:
        conn, tcp = _open(node, Coalescer(node.loop))
        conn.write(Frame(b"a"))
        conn.write(Frame(b"b"))
        conn.close(1000, "bye")
        assert tcp.writes[0] == _wire(b"a")
        assert tcp.writes[1] == _wire(b"b")
        assert tcp.writes[2][0] == 0x88  # the close frame, last
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert len(tcp.writes) == 3  # nothing held was written twice, nothing after close

    run(main)


def test_a_paused_client_gets_every_frame_weighed_not_held(run: Runner, node: Node) -> None:
    async def main() -> None:
        conn, tcp = _open(node, Coalescer(node.loop))
        conn.write(Frame(b"a"))
        conn.write(Frame(b"b"))  # held
        conn.pause_writing()
        conn.write(Frame(b"c"))  # paused: what was held first, then this one, each weighed
        assert tcp.writes == [_wire(b"a"), _wire(b"b"), _wire(b"c")]

    run(main)
