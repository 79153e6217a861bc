"""The launcher's output never stops it: `LineWriter` drops lines a stuck reader would
block on, and counts them.

The launcher runs in this process, on a loop in a thread of its own (so that a loop
blocked on a pipe fails the test after a bound instead of hanging it), with real node
processes whose "python" is a wrapper printing 2,000 lines before the node starts.
Nothing reads the pipe until the launcher has restarted a SIGKILLed node.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import stat
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from pathlib import Path

import pytest
from testkit.launcher import APP, SECRET, WAIT, free_ports
from testkit.processes import REPO

from alight.launcher import UP, ClusterLauncher, LaunchConfig, LineWriter, NodeStatus

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

NOISE_LINES = 2000


def _noisy_python(tmp_path: Path) -> Path:
    script = tmp_path / "noisy-python"
    noise = f"import sys; sys.stdout.write(('noise ' * 16 + chr(10)) * {NOISE_LINES})"
    script.write_text(
        f'#!/bin/sh\ncd "{REPO}" || exit 1\n"{sys.executable}" -c "{noise}"\nexec "{sys.executable}" "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture
def pipe() -> Iterator[tuple[int, io.TextIOWrapper]]:
    """A pipe's read end (nobody reads it unless the test does) and its write end."""
    read_fd, write_fd = os.pipe()
    stream = os.fdopen(write_fd, "w")
    try:
        yield read_fd, stream
    finally:
        with contextlib.suppress(OSError):
            stream.close()
        with contextlib.suppress(OSError):
            os.close(read_fd)


def _read_all(fd: int, into: bytearray) -> None:
    while chunk := os.read(fd, 65536):
        into += chunk


def test_a_reader_that_stops_reading_loses_lines_not_restarts(
    tmp_path: Path, pipe: tuple[int, io.TextIOWrapper]
) -> None:
    read_fd, stream = pipe
    writer = LineWriter(stream, limit=16_384)
    config = LaunchConfig(app=APP, nodes=2, port=free_ports(2), port_per_node=True, restart=True)
    pids: set[int] = set()
    restarted = asyncio.Event()  # of the launcher's loop, which calls on_change
    first: list[int] = []

    def on_change(nodes: list[NodeStatus]) -> None:
        pids.update(node.pid for node in nodes if node.pid)
        if first and nodes[1].pid != first[0] and nodes[1].state == UP:
            restarted.set()

    launcher = ClusterLauncher(config, secret=SECRET, output=writer, python=str(_noisy_python(tmp_path)))
    launcher.on_change = on_change

    async def scenario() -> None:
        stopping = asyncio.Event()
        watching: asyncio.Future[None] | None = None
        try:
            await launcher.start()
            assert launcher.output_dropped > 0  # the pipe is full: lines go, the start goes on
            pid = launcher.nodes[1].pid
            assert pid is not None
            first.append(pid)
            watching = asyncio.ensure_future(launcher.monitor(stopping))
            os.kill(pid, signal.SIGKILL)
            waiting = asyncio.ensure_future(restarted.wait())
            await asyncio.wait([watching, waiting], return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            assert not watching.done(), "the launcher stopped watching"
        finally:
            stopping.set()
            if watching is not None:
                await watching
            await launcher.stop()

    executor = ThreadPoolExecutor(1)
    running = executor.submit(asyncio.run, asyncio.wait_for(scenario(), 2 * WAIT))
    try:
        try:
            running.result(3 * WAIT)
        except FuturesTimeout:  # its loop is blocked on the pipe: unblock it (EPIPE)
            os.close(read_fd)
            pytest.fail("the launcher's loop blocked on its output")
        finally:
            executor.shutdown(wait=False)
        assert restarted.is_set()
        assert writer.dropped >= NOISE_LINES  # at least one life's noise, of the three lives
        # Once the reader reads again, notes say how much it lost.
        output = bytearray()
        reader = threading.Thread(target=_read_all, args=(read_fd, output))
        reader.start()
        assert writer.close(timeout=WAIT)
        stream.close()
        reader.join(WAIT)
        text = output.decode()
        # A note precedes the first line accepted after drops, and `close` adds one for
        # the last drops; whether the text ends with a note depends on whether the last
        # line was dropped or fit in the queue (a race with the writing thread), but
        # every line lost is told.
        notes = re.findall(r"^\[alight launcher\] output dropped: (\d+) lines", text, re.MULTILINE)
        assert notes
        assert sum(int(count) for count in notes) == writer.dropped
        assert "[node0@127.0.0.1] noise noise" in text
    finally:
        for pid in pids:  # every node is the leader of its group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def test_line_writer_writes_whole_lines_in_order_to_a_stream_without_a_descriptor() -> None:
    sink = io.StringIO()
    writer = LineWriter(sink, limit=64)
    writer.write("a")
    writer.write("b\nc")
    writer.write("d\n")
    writer.write("x" * 100 + "\n")  # over the bound: dropped whole
    writer.write("e")  # a partial line: written by close
    assert writer.close(timeout=WAIT)
    assert writer.dropped == 1
    assert sink.getvalue() == "ab\ncd\n[alight launcher] output dropped: 1 lines (the reader was slow)\ne\n"
    writer.write("late\n")  # after close: dropped and counted
    assert writer.dropped == 2
