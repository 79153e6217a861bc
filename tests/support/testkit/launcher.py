"""`alight cluster start` and `alight node` as OS processes (the launcher's tests and the demo's)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testkit import UNIT
from testkit.processes import REPO

SECRET = "test-launcher-secret-0123456789abcdef"


WAIT = 15 * UNIT


APP = "examples.reference:app"


def alight_command() -> list[str]:
    script = Path(sys.executable).with_name("alight")
    return [str(script)] if script.exists() else [sys.executable, "-m", "alight.cli"]


def launcher_env(secret: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ALIGHT_CLUSTER_SECRET"}
    if secret is not None:
        env["ALIGHT_CLUSTER_SECRET"] = secret
    return env


def free_ports(consecutive: int = 1) -> int:
    """A port P such that P..P+consecutive-1 are free on 127.0.0.1 now.

    Chosen below the kernel's ephemeral range (32768+ by default), so that no outgoing
    connection of another test can take P+1 between this check and the node's bind."""
    for _ in range(200):
        port = random.randrange(20_000, 32_000 - consecutive)
        held = []
        try:
            for offset in range(consecutive):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError("no free ports")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Child:
    """An ``alight`` command in its own session, its output read line by line."""

    def __init__(self, args: list[str], secret: str | None) -> None:
        self.proc = subprocess.Popen(
            [*alight_command(), *args],
            cwd=REPO,
            env=launcher_env(secret),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=0,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._buffer = b""

    def wait_line(self, predicate: Callable[[str], bool], timeout: float = WAIT) -> str:
        """The first line (new or already read) satisfying ``predicate``."""
        for line in self.lines:
            if predicate(line):
                return line
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            deadline = monotonic_now() + timeout
            while True:
                remaining = deadline - monotonic_now()
                if remaining <= 0 or not selector.select(remaining):
                    pytest.fail(f"no expected line in {timeout}s; output:\n" + "\n".join(self.lines))
                chunk = os.read(fd, 65536)
                if not chunk:
                    pytest.fail(f"exited ({self.proc.poll()}) first; output:\n" + "\n".join(self.lines))
                self._buffer += chunk
                *complete, self._buffer = self._buffer.split(b"\n")
                # Keep every line of the chunk (a later wait may need the ones after
                # the match), then answer with the first match.
                start = len(self.lines)
                self.lines.extend(raw.decode(errors="replace") for raw in complete)
                for line in self.lines[start:]:
                    if predicate(line):
                        return line

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=WAIT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def monotonic_now() -> float:
    import time

    return time.monotonic()


def read_status(path: Path) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = json.loads(path.read_text())["nodes"]
    return nodes
