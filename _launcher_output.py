"""A text stream the event loop never waits on: the launcher's output to a pipe.

A launcher copies its nodes' output (and logs its own) to stderr. Written from the
event loop, a full pipe (a consumer that stopped reading) would block the loop, and
with it every restart. `LineWriter(stream)` takes text with `write`, which never
blocks: complete lines are queued and a thread of its own writes them to ``stream``'s
file descriptor (``os.write``: no lock shared with the stream's Python buffer). The
queue holds at most ``limit`` bytes (plus the batch being written); beyond it whole
writes are dropped and counted (`LineWriter.dropped`), and once the reader catches up
a note says how many lines were lost (`close` adds one for the last ones). A stream
without a file descriptor (``io.StringIO``) is written with its own ``write`` by the
same thread.

Each ``os.write`` carries whole lines, at most ``PIPE_BUF`` bytes when it can (a pipe
writes that much atomically), so lines of other writers of the same pipe interleave
with these only between lines. A reader gone for good (``EPIPE``) ends the writing:
what follows is dropped and counted. `close` writes what is queued, bounded by a
timeout: the thread is a daemon, so a reader stuck forever never holds the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import select
import threading
from collections import deque
from typing import IO

OUTPUT_LIMIT = 1 << 20
"""Default bound, in bytes, of the text queued for the reader (about 10,000 lines)."""

_ATOMIC = select.PIPE_BUF
"""Bytes a pipe writes in one piece; one ``os.write`` takes whole lines up to this."""


class LineWriter:
    """A non-blocking, bounded writer of lines to ``stream`` (see the module doc).

    Give it where a text stream is expected (``logging.StreamHandler``, a rich
    ``Console``, `ClusterLauncher`'s ``output``); call `close` (or ``await aclose()``)
    when done. ``dropped`` counts the lines lost to the bound or to a reader gone.
    """

    def __init__(self, stream: IO[str], *, limit: int = OUTPUT_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1 byte, got {limit}")
        self.stream = stream
        self.limit = limit
        self.dropped = 0
        """Lines dropped: the queue was over ``limit``, or the reader is gone."""
        self._fd: int | None
        try:
            self._fd = stream.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            self._fd = None
        self._partial = ""
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._noted = 0  # drops already reported in a note
        self._closing = False
        self._broken = False
        self._lock = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="alight.output", daemon=True)
        self._thread.start()

    # -- the text stream -----------------------------------------------------------------

    @property
    def encoding(self) -> str:
        """The stream's encoding (rich's ``Console`` reads it)."""
        return getattr(self.stream, "encoding", None) or "utf-8"

    def isatty(self) -> bool:
        """Whether the stream is a terminal (for colours)."""
        with contextlib.suppress(AttributeError, OSError, ValueError):
            return self.stream.isatty()
        return False

    def write(self, text: str) -> int:
        """Queue the complete lines of ``text`` (a partial last line waits for its end);
        never blocks. Returns ``len(text)``, as a stream does, even if lines were dropped."""
        text = self._partial + text
        end = text.rfind("\n") + 1
        self._partial = text[end:]
        if len(self._partial) > self.limit:  # no newline coming: write it as a line
            end, self._partial = len(text), ""
        if end:
            self._put(text[:end] if text[end - 1] == "\n" else text[:end] + "\n")
        return len(text)

    def flush(self) -> None:
        """Nothing to do: the thread writes as soon as the reader takes it."""

    def _put(self, text: str) -> None:
        data = text.encode(self.encoding, "replace")
        lines = text.count("\n")
        with self._lock:
            if self._closing or self._broken or self._queued + len(data) > self.limit:
                self.dropped += lines
                return
            self._note_drops()
            self._queue.append(data)
            self._queued += len(data)
            self._lock.notify()

    def _note_drops(self) -> None:
        # Under the lock: tell the reader how many lines it lost since the last note.
        if self.dropped > self._noted and not self._broken:
            note = f"[alight launcher] output dropped: {self.dropped - self._noted} lines (the reader was slow)\n"
            self._noted = self.dropped
            self._queue.append(note.encode())
            self._queued += len(note)

    # -- closing ------------------------------------------------------------------------

    def close(self, timeout: float = 1.0) -> bool:
        """Write what is queued (and a pending partial line) within ``timeout`` seconds,
        then stop; True if everything queued was written. Blocks: from a loop, use
        `aclose`."""
        if self._partial:
            self.write("\n")
        with self._lock:
            if not self._closing:
                self._note_drops()  # the last word: what was lost since the last note
            self._closing = True
            self._lock.notify()
        self._thread.join(timeout)
        return not self._thread.is_alive() and not self._queue

    async def aclose(self, timeout: float = 1.0) -> bool:
        """`close` without blocking the loop."""
        return await asyncio.to_thread(self.close, timeout)

    # -- the writing thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._lock.wait()
                if not self._queue:
                    return
                batch = [self._queue.popleft()]
                size = len(batch[0])
                while self._queue and size + len(self._queue[0]) <= _ATOMIC:
                    size += len(self._queue[0])
                    batch.append(self._queue.popleft())
                self._queued -= size
            try:
                self._write(b"".join(batch))
            except (OSError, ValueError):  # the reader is gone (EPIPE) or the stream closed
                with self._lock:
                    self._broken = True
                    self.dropped += sum(chunk.count(b"\n") for chunk in batch)
                    self.dropped += sum(chunk.count(b"\n") for chunk in self._queue)
                    self._queue.clear()
                    self._queued = 0
                return

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            self.stream.write(data.decode(self.encoding, "replace"))
            self.stream.flush()
            return
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
