"""Real processes for the tests that drive an app from outside: an app as an OS
process (`running_app`), and Node scripts (the official phoenix client, a headless
browser) run with a bound on their time (`run_node`).

Every wait is bounded by a multiple of `UNIT`; every process started here is
killed, with its whole process group, when it is done with.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from . import UNIT

REPO = Path(__file__).resolve().parents[3]
"""The checkout (whatever its directory is called)."""
JS_DIR = REPO / "tests" / "js"

STARTUP_TIMEOUT = 15 * UNIT
"""Seconds the app has to answer ``GET /health``."""
STOP_TIMEOUT = 5 * UNIT
"""Seconds the app has to exit after SIGTERM before it is killed."""


def free_port() -> int:
    """A port that was free a moment ago (the caller retries if it is taken since)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def command_lines(*needles: str) -> list[str]:
    """Command lines of the processes running now that hold one of ``needles`` (to
    check that a run left none of its children behind)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if any(needle in cmdline for needle in needles):
                found.append(cmdline)
    return found


def kill_group(proc: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM ``proc``'s process group (it was started in a session of its own), then
    SIGKILL it if it has not exited within ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
            break
        except subprocess.TimeoutExpired:
            continue
    # Children left in the group (a browser whose driver died first) go too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class RunningApp:
    """An app served by ``alight run`` in its own OS process."""

    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def http(self, path: str) -> str:
        return f"http://{self.host}{path}"

    def ws(self, query: str = "vsn=2.0.0") -> str:
        return f"ws://{self.host}/socket/websocket?{query}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        """Everything the app logged so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 5 * UNIT, after: int = 0) -> str:
        """Wait (bounded) until ``text`` appears in the log past offset ``after``;
        return the line it is on."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()[after:]
            index = log.find(text)
            if index >= 0:
                start = log.rfind("\n", 0, index) + 1
                end = log.find("\n", index)
                return log[start : end if end >= 0 else len(log)]
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged within {timeout} s; the log ends with:\n{log[-2000:]}")
            time.sleep(0.02)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=UNIT) as response:
            return bool(response.status == 200 and response.read() == b"ok")
    except (OSError, urllib.error.URLError):
        return False


def alight_run(spec: str, port: int) -> list[str]:
    """The command serving ``spec`` with alight's native server."""
    return [sys.executable, "-m", "alight.cli", "run", spec, "--port", str(port)]


def uvicorn_run(spec: str, port: int) -> list[str]:
    """The command serving the ASGI app ``spec`` under uvicorn."""
    return [sys.executable, "-m", "uvicorn", spec, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]


def start_app(
    spec: str,
    log_path: Path,
    attempts: int = 3,
    command: Callable[[str, int], list[str]] = alight_run,
    cwd: Path = REPO,
) -> RunningApp:
    """Start ``alight run SPEC`` (or ``command``, in ``cwd``) on a free port and wait
    for ``/health``; a port taken between the probe and the bind makes the process
    exit, and another port is tried."""
    for _ in range(attempts):
        port = free_port()
        log = log_path.open("wb")
        proc = subprocess.Popen(
            command(spec, port),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            if _healthy(port):
                return RunningApp(port, proc, log_path)
            time.sleep(0.05)
        kill_group(proc)
    raise AssertionError(f"{spec} did not start; its log:\n{log_path.read_text(errors='replace')[-4000:]}")


@contextlib.contextmanager
def running_app(
    spec: str, log_path: Path, command: Callable[[str, int], list[str]] = alight_run, cwd: Path = REPO
) -> Iterator[RunningApp]:
    """`start_app`, and kill the app's process group afterwards."""
    app = start_app(spec, log_path, command=command, cwd=cwd)
    try:
        yield app
    finally:
        kill_group(app.proc)


# -- Node scripts -------------------------------------------------------------------------


def require_js() -> str:
    """The ``node`` executable, once ``tests/js/node_modules`` is installed; else skip
    (or fail, when ``ALIGHT_REQUIRE_BROWSER`` says the tools must be there, as in CI)."""
    node = shutil.which("node")
    missing = []
    if node is None:
        missing.append("node is not installed")
    for package in ("phoenix", "ws", "playwright-core"):
        if not (JS_DIR / "node_modules" / package / "package.json").exists():
            missing.append(f"tests/js/node_modules/{package} is missing (./dev test runs npm ci)")
    if missing:
        reason = "; ".join(missing)
        if os.environ.get("ALIGHT_REQUIRE_BROWSER"):
            pytest.fail(f"ALIGHT_REQUIRE_BROWSER is set but {reason}")
        pytest.skip(reason)
    assert node is not None
    return node


@dataclass
class NodeRun:
    """What a Node script printed: one JSON object per line, each with a ``check``."""

    returncode: int
    lines: list[dict[str, Any]]
    stderr: str
    by_check: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __getitem__(self, check: str) -> dict[str, Any]:
        """The observation named ``check``; fails with everything the script said if
        it is missing or reports an error."""
        seen = self.by_check.get(check)
        if seen is None:
            raise AssertionError(f"no {check!r} observation; the script said:\n{self.transcript()}")
        if "error" in seen:
            raise AssertionError(f"{check}: {seen['error']}\n{self.transcript()}")
        return seen

    def transcript(self) -> str:
        out = "\n".join(json.dumps(line) for line in self.lines)
        return f"{out}\n(exit status {self.returncode})\nstderr:\n{self.stderr[-4000:]}"


def run_node(script: str, *args: str, timeout: float = 30 * UNIT) -> NodeRun:
    """Run ``tests/js/<script>`` with ``args``, killing its process group after
    ``timeout`` s, and parse its JSON-lines output."""
    node = require_js()
    proc = subprocess.Popen(
        [node, script, *args],
        cwd=JS_DIR,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "ALIGHT_TEST_UNIT": str(UNIT)},
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc, timeout=UNIT)
        stdout, stderr = proc.communicate()
        raise AssertionError(
            f"{script} {' '.join(args)} did not finish within {timeout} s:\n{stdout.decode()}\n{stderr.decode()}"
        ) from None
    finally:
        kill_group(proc, timeout=UNIT)  # whatever it started (a browser) goes with it
    lines: list[dict[str, Any]] = []
    for text in stdout.decode().splitlines():
        if text.startswith("{"):
            lines.append(json.loads(text))
    run = NodeRun(proc.returncode, lines, stderr.decode())
    for line in lines:
        run.by_check.setdefault(str(line.get("check")), line)
    return run


def load_example(name: str) -> ModuleType:
    """``examples/<name>.py`` of the checkout, imported as ``examples.<name>`` (what
    ``alight run examples.<name>:app`` imports, from the checkout's directory)."""
    spec = importlib.util.spec_from_file_location(f"examples.{name}", REPO / "examples" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def read_until_ready(proc: subprocess.Popen[bytes], name: str, wait: float) -> list[str]:
    """The lines a node process printed up to its ``ready`` line, within ``wait``
    seconds; `TimeoutError` if it is not ready in time, `RuntimeError` if it exited
    first (both say what it printed)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + wait
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while b"ready\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise TimeoutError(f"node {name} did not start: {buffer.decode()!r}")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"node {name} exited with {proc.poll()}: {buffer.decode()!r}")
            buffer += chunk
    return buffer.decode().splitlines()
