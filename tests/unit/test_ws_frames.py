"""The WebSocket frame codec, bytes in and events or bytes out (no sockets)."""

from __future__ import annotations

import os
import struct

import pytest
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.speedups import apply_mask
from websockets.streams import StreamReader

from alight.transports.errors import WebSocketProtocolError
from alight.transports.websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameParser,
    PartialFrames,
    encode_close,
    encode_frame,
    parse_close,
)


def client_frame(opcode: int, data: bytes, fin: bool = True, rsv: int = 0, masked: bool = True) -> bytes:
    """A frame as a client sends it (masked)."""
    n = len(data)
    b0 = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head = bytes((b0, mask_bit | n))
    elif n < 65536:
        head = struct.pack("!BBH", b0, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mask_bit | 127, n)
    if not masked:
        return head + data
    mask = os.urandom(4)
    return head + mask + apply_mask(data, mask)


def test_text_and_binary_messages() -> None:
    parser = FrameParser()
    data = client_frame(OP_TEXT, "héllo".encode()) + client_frame(OP_BINARY, b"\x00\xff")
    assert parser.feed(data) == [(OP_TEXT, "héllo".encode()), (OP_BINARY, b"\x00\xff")]


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000])
def test_every_length_encoding_fed_byte_by_byte_or_in_chunks(size: int) -> None:
    payload = os.urandom(size)
    wire = client_frame(OP_BINARY, payload) * 2
    parser = FrameParser()
    step = 1 if size < 200 else 4096
    events = []
    for i in range(0, len(wire), step):
        events += parser.feed(wire[i : i + step])
    assert events == [(OP_BINARY, payload), (OP_BINARY, payload)]


def test_fragmented_message_with_interleaved_ping() -> None:
    parser = FrameParser()
    wire = (
        client_frame(OP_TEXT, b"ab", fin=False)
        + client_frame(OP_PING, b"p")
        + client_frame(OP_CONT, b"cd", fin=False)
        + client_frame(OP_CONT, b"e")
    )
    assert parser.feed(wire) == [(OP_PING, b"p"), (OP_TEXT, b"abcde")]


def test_control_frames() -> None:
    parser = FrameParser()
    wire = client_frame(OP_PONG, b"x") + client_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye")
    assert parser.feed(wire) == [(OP_PONG, b"x"), (OP_CLOSE, b"\x03\xe8bye")]


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (client_frame(OP_TEXT, b"x", masked=False), 1002),
        (client_frame(OP_TEXT, b"x", rsv=0x40), 1002),
        (client_frame(0x3, b"x"), 1002),
        (client_frame(0xB, b"x"), 1002),
        (client_frame(OP_PING, b"x", fin=False), 1002),
        (client_frame(OP_PING, b"x" * 126), 1002),
        (client_frame(OP_CONT, b"x"), 1002),
        (client_frame(OP_TEXT, b"a", fin=False) + client_frame(OP_TEXT, b"b"), 1002),
        (client_frame(OP_TEXT, b"\xff\xfe"), 1007),
        (client_frame(OP_TEXT, b"x" * 101), 1009),
        (client_frame(OP_TEXT, b"x" * 60, fin=False) + client_frame(OP_CONT, b"x" * 60), 1009),
    ],
)
def test_protocol_violations_name_their_close_code(wire: bytes, code: int) -> None:
    with pytest.raises(WebSocketProtocolError) as info:
        FrameParser(max_size=100).feed(wire)
    assert info.value.code == code


def test_an_oversize_header_fails_before_the_payload_arrives() -> None:
    header = struct.pack("!BBQ", 0x82, 0xFF, 1 << 40)
    with pytest.raises(WebSocketProtocolError) as info:
        FrameParser().feed(header)
    assert info.value.code == 1009


def test_parse_close() -> None:
    assert parse_close(b"") == (1005, "")
    assert parse_close(struct.pack("!H", 4000) + b"ok") == (4000, "ok")
    for bad, code in [(b"\x03", 1002), (struct.pack("!H", 1005), 1002), (struct.pack("!H", 1000) + b"\xff", 1007)]:
        with pytest.raises(WebSocketProtocolError) as info:
            parse_close(bad)
        assert info.value.code == code


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_server_frames_parse_with_websockets(size: int) -> None:
    payload = os.urandom(size)
    reader = StreamReader()
    reader.feed_data(encode_frame(OP_BINARY, payload) + encode_close(1008, "slow consumer"))
    parse = WsFrame.parse(reader.read_exact, mask=False)
    frames = []
    for _ in range(2):
        try:
            next(parse)
        except StopIteration as done:
            frames.append(done.value)
        parse = WsFrame.parse(reader.read_exact, mask=False)
    assert frames[0].opcode is Opcode.BINARY
    assert frames[0].data == payload
    assert frames[1].opcode is Opcode.CLOSE
    assert frames[1].data == b"\x03\xf0slow consumer"


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_a_control_frame_over_125_bytes_fails_on_its_header(opcode: int) -> None:
    # RFC 6455 §5.5: an 8 MB ping is refused from its 14-byte header, nothing buffered.
    header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, 8_000_000) + os.urandom(4)
    with pytest.raises(WebSocketProtocolError) as info:
        FrameParser().feed(header)
    assert info.value.code == 1002


def test_a_continuation_that_would_take_the_message_over_the_limit_fails_on_its_header() -> None:
    parser = FrameParser(max_size=100)
    parser.feed(client_frame(OP_TEXT, b"x" * 60, fin=False))
    with pytest.raises(WebSocketProtocolError) as info:
        parser.feed(struct.pack("!BB", OP_CONT | 0x80, 0x80 | 60))
    assert info.value.code == 1009


def test_buffered_counts_unfinished_frames_and_fragments() -> None:
    parser = FrameParser()
    wire = client_frame(OP_TEXT, b"y" * 1_000)
    assert parser.feed(wire[:500]) == []
    assert parser.buffered == 500
    assert parser.feed(wire[500:]) == [(OP_TEXT, b"y" * 1_000)]
    assert parser.buffered == 0
    parser.feed(client_frame(OP_TEXT, b"a" * 10, fin=False))
    assert parser.buffered == 10
    parser.feed(client_frame(OP_CONT, b"b" * 5))
    assert parser.buffered == 0


def test_partial_frames_closes_the_largest_holders_until_the_total_fits() -> None:
    budget = PartialFrames(limit=1_000)
    assert budget.hold("a", 400) == []
    assert budget.hold("b", 300) == []
    assert budget.hold("c", 200) == []
    assert budget.hold("b", 350) == []  # 950: fits
    assert budget.hold("d", 300) == ["a"]  # 1,250: a holds most; without it 850 fits
    assert (budget.total, sorted(budget.holders)) == (850, ["b", "c", "d"])
    assert budget.hold("d", 0) == []
    assert budget.total == 550
    assert budget.hold("e", 2_000) == ["e"]  # one holder over the whole budget
    assert (budget.total, sorted(budget.holders)) == (550, ["b", "c"])
