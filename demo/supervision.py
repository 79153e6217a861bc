"""``alight demo supervision``: watch a supervision tree restart what it should.

A node runs a top supervisor (``demo``, ``one_for_one``) over three sub-supervisors,
one per OTP strategy (``one_for_one``, ``one_for_all``, ``rest_for_one``), each with
three ticking `Ticker` workers. Everything shown comes from the runtime: restarts
are seen through monitors and `Started` messages sent by the new processes, the tree
through `which_children` and `process_info`, and the event log through the
runtime's own loggers (``alight.actors.crash``, ``alight.actors.supervisor``).

`run` (``script=False``) shows a rich Live view and reads keys from stdin: a digit
crashes a worker, ``a``/``b``/``c`` burst-crash a sub-tree until its restart
intensity breaks and its supervisor escalates, ``A``/``B``/``C`` kill a
sub-supervisor, ``t`` kills the top one, ``q`` (or end of input) quits.

``script=True`` runs a fixed scenario unattended and prints one line per
observation; the exit status is 0 only if every restart matched its strategy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import termios
import tty
from collections.abc import Iterator

from rich.console import Console

from ..actors import Node, current_node, self_pid
from ._supervision_live import LiveDemo
from ._supervision_script import Script
from ._supervision_tree import LogCapture

__all__ = ["run"]

RUNTIME_LOGGER = "alight.actors"


def run(*, script: bool = False) -> int:
    """Run the demo on a fresh node; returns the process exit status.

    The node's tree is stopped (in reverse start order) before this returns.
    """
    node = Node("demo@localhost")
    if script:
        return node.run(_script_main)
    fd = _stdin_fd()
    with _cbreak(fd):
        try:
            return node.run(_live_main, Console(), fd)
        except KeyboardInterrupt:
            return 130


async def _script_main() -> int:
    def out(line: str) -> None:
        print(line, flush=True)

    with _captured_logs():
        return await Script(out).run()


async def _live_main(console: Console, fd: int | None) -> int:
    with _captured_logs():
        return await LiveDemo(console, fd).run()


@contextlib.contextmanager
def _captured_logs() -> Iterator[None]:
    """Send the runtime's log records to the current process as `LogEvent`s, and
    nowhere else, while the demo runs (they would scribble over the screen)."""
    logger = logging.getLogger(RUNTIME_LOGGER)
    handler = LogCapture(current_node(), self_pid())
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


@contextlib.contextmanager
def _cbreak(fd: int | None) -> Iterator[None]:
    """Single keys without Enter when stdin is a terminal; lines from a pipe work as is."""
    if fd is None or not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _stdin_fd() -> int | None:
    try:
        return sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):  # no stdin, closed, or not a real file
        return None
