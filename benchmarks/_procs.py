"""Process helpers shared by the benchmark scripts: pin a child to one CPU, find a free
loopback port, start a child in its own process group and read its output lines
(`started`, `Child`), stop a child's whole process group.

Both cores of the benchmark machine are used on purpose: the measured side on CPU 0 and
its peer (load generator, second node) on CPU 1, so that neither steals from the other.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
"""The checkout: the working directory of every child."""

CPUS = (0, 1)
"""The two CPUs the benchmarks pin their children to."""

STOP_TIMEOUT = 5.0
"""Seconds a stopped child gets for each signal before the next, harder one."""
READY_TIMEOUT = 20.0
"""Seconds a child has to print its ready line."""
RESULT_TIMEOUT = 75.0
"""Seconds a measuring child has to print its result (their own limit is 60 s)."""

_PIN = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])}); os.execv(sys.argv[2], sys.argv[2:])"


def can_pin() -> bool:
    """Whether children can be pinned to `CPUS` (Linux, and both CPUs available to us)."""
    return hasattr(os, "sched_setaffinity") and set(CPUS) <= os.sched_getaffinity(0)


def pinned(command: list[str], cpu: int) -> list[str]:
    """``command`` started on ``cpu`` only (the affinity survives ``exec``; the pid is kept),
    or ``command`` unchanged where pinning is not possible."""
    return [sys.executable, "-c", _PIN, str(cpu), *command] if can_pin() else command


def rss_bytes(pid: int) -> int:
    """The resident memory of process ``pid`` (``/proc/PID/statm``)."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


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


class BenchError(Exception):
    """A child failed or did not answer in time; the message says which and why."""


class Child:
    """A child process; its stdout lines are read by a thread into a queue, and its
    stderr by another, which keeps the last `ERROR_LINES` (a child that logs a lot
    never blocks on a full pipe)."""

    ERROR_LINES = 40

    def __init__(self, proc: subprocess.Popen[str], label: str) -> None:
        self.proc = proc
        self.label = label
        self.bound: str | None = None
        self.ready = ""
        self.lines: Queue[str | None] = Queue()
        self.errors: deque[str] = deque(maxlen=self.ERROR_LINES)
        assert proc.stdout is not None
        assert proc.stderr is not None
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()
        self._drain = threading.Thread(target=self.errors.extend, args=(proc.stderr,), daemon=True)
        self._drain.start()

    def _pump(self, out: IO[str]) -> None:
        for line in out:
            self.lines.put(line.strip())
        self.lines.put(None)

    def line(self, timeout: float) -> str:
        """The next line of output; `BenchError` if the child exits or is silent too long."""
        try:
            line = self.lines.get(timeout=timeout)
        except Empty:
            raise BenchError(f"{self.label}: no output after {timeout} s") from None
        if line is None:
            code = self.proc.wait()
            self._drain.join(1.0)
            raise BenchError(f"{self.label} exited ({code}): {''.join(self.errors)[-1500:]}")
        return line

    def expect(self, prefix: str, timeout: float = READY_TIMEOUT) -> str:
        """The first line starting with ``prefix`` (whole), skipping the others."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.line(max(0.01, deadline - time.monotonic()))
            if line.startswith("address "):
                self.bound = line.split()[1]
            if line.startswith(prefix):
                return line

    def address(self) -> str:
        """The address the child bound (printed before ``ready``)."""
        if self.bound is None:
            raise BenchError(f"{self.label} printed no address")
        return self.bound

    def result(self, timeout: float = RESULT_TIMEOUT) -> dict[str, Any]:
        """The child's JSON result line."""
        value: dict[str, Any] = json.loads(self.expect("{", timeout))
        return value

    def tell(self, command: dict[str, Any]) -> None:
        """Write ``command`` as a JSON line to the child's stdin (``commands=True``)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def answer(self, what: str, timeout: float = RESULT_TIMEOUT) -> dict[str, Any]:
        """The child's next JSON line; `BenchError` if it is ``{"error": ...}``."""
        answer = self.result(timeout)
        if "error" in answer:
            raise BenchError(f"{self.label}: {what}: {answer['error']}")
        return answer

    def ask(self, command: dict[str, Any], timeout: float = RESULT_TIMEOUT) -> dict[str, Any]:
        """`tell` ``command``, then its `answer`."""
        self.tell(command)
        return self.answer(str(command.get("cmd")), timeout)


@contextlib.contextmanager
def started(
    command: list[str], label: str, ready: str, secret: str, *, commands: bool = False, **env: str
) -> Iterator[Child]:
    """Start ``command`` in its own process group (``ALIGHT_CLUSTER_SECRET`` = ``secret``
    and ``env`` added to the environment), wait for a line starting with ``ready``, kill
    its group afterwards. With ``commands``, its stdin is a pipe: `Child.ask`."""
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        stdin=subprocess.PIPE if commands else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "ALIGHT_CLUSTER_SECRET": secret, **env},
    )
    try:
        node = Child(proc, label)
        if ready:
            node.ready = node.expect(ready)
        yield node
    finally:
        kill_group(proc)
