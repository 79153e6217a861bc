"""Process helpers shared by the benchmark scripts: pin a child to one CPU, find a free
loopback port, stop a child's whole process group.

Both cores of the benchmark machine are used on purpose: the measured side on CPU 0 and
its peer (load generator, second node) on CPU 1, so that neither steals from the other.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from typing import Any

CPUS = (0, 1)
"""The two CPUs the benchmarks pin their children to."""

STOP_TIMEOUT = 5.0
"""Seconds a stopped child gets for each signal before the next, harder one."""

_PIN = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])}); os.execv(sys.argv[2], sys.argv[2:])"


def can_pin() -> bool:
    """Whether children can be pinned to `CPUS` (Linux, and both CPUs available to us)."""
    return hasattr(os, "sched_setaffinity") and set(CPUS) <= os.sched_getaffinity(0)


def pinned(command: list[str], cpu: int) -> list[str]:
    """``command`` started on ``cpu`` only (the affinity survives ``exec``; the pid is kept),
    or ``command`` unchanged where pinning is not possible."""
    return [sys.executable, "-c", _PIN, str(cpu), *command] if can_pin() else command


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def kill_group(proc: subprocess.Popen[Any], first: int = signal.SIGTERM) -> None:
    """Signal the process group of ``proc`` (``first``, then SIGKILL if it lingers past
    `STOP_TIMEOUT`) and reap ``proc``. The child must lead its own group
    (``start_new_session=True``)."""
    for sig in (first, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT)
            return
