"""Both clients (`alight.client` and alight.js in headless Chromium) against a reference
app whose OS process dies or stops answering.

- Server restart: ``alight run examples.reference:app --port P`` is SIGKILLed and started
  again on the same port; every client reconnects (its backoff has jitter), rejoins its
  channel with a fresh join ref, gets a fresh ``presence_state``, and messages flow.
- Heartbeat timeout: the app is SIGSTOPped (it keeps its connections and answers
  nothing); the WebSocket clients notice within their heartbeat window (1000 "heartbeat
  timeout"), and once the app is SIGCONTed they reconnect and rejoin.

The browser part is interactive: tests/js/alight_browser_restart.js reports each phase
as one JSON line and this test acts on the app in between (`NodeSession`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import queue
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from testkit import UNIT
from testkit.browser import CHROMIUM, require_chromium
from testkit.processes import JS_DIR, REPO, RunningApp, alight_run, kill_group, require_js
from testkit.python_client import WAIT, run, wait_until

from alight.client import ChannelState, LongPoll, Presence, Reply, Socket

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

SPEC = "examples.reference:app"
RESTART_WAIT = 20 * UNIT
"""Seconds for the app to come back and the clients to rejoin (the backoff reaches 5 s)."""
STOP_WAIT = 5 * UNIT
"""Seconds a SIGKILLed app has to be reaped."""
STARTUP_WAIT = 15 * UNIT
"""Seconds the app has to answer ``/health``."""


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=UNIT) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _port_below_ephemeral() -> int:
    """A free port below the kernel's ephemeral range (32768+), so that no outgoing
    connection of another test can take it while the app is down between restarts."""
    for _ in range(200):
        port = random.randrange(20_000, 32_000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def _start(port: int, log_path: Path) -> subprocess.Popen[bytes] | None:
    """The app started on ``port`` once it answers ``/health``; None (and the process
    killed) if it exited or did not answer in time."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            alight_run(SPEC, port),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + STARTUP_WAIT
    while proc.poll() is None and time.monotonic() < deadline:
        if _healthy(port):
            return proc
        time.sleep(0.05)
    kill_group(proc)
    return None


def restart(app: RunningApp) -> None:
    """SIGKILL the app's process group and start the app again on the same port (the
    new process replaces ``app.proc``), waiting for ``/health``."""
    os.killpg(app.proc.pid, signal.SIGKILL)
    app.proc.wait(STOP_WAIT)
    proc = _start(app.port, app.log_path)
    if proc is None:
        raise AssertionError(f"the app did not come back on port {app.port}:\n{app.log()[-3000:]}")
    app.proc = proc


@pytest.fixture
def own_app(tmp_path: Path) -> Iterator[RunningApp]:
    """A reference app of this test's own (it gets stopped, killed and restarted)."""
    log_path = tmp_path / "app.log"
    for _ in range(3):
        port = _port_below_ephemeral()
        proc = _start(port, log_path)
        if proc is not None:
            break
    else:
        raise AssertionError(f"the reference app did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
    app = RunningApp(port, proc, log_path)
    try:
        yield app
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(app.proc.pid, signal.SIGCONT)
        kill_group(app.proc)


# -- the Python client -------------------------------------------------------------------


def test_python_clients_reconnect_and_rejoin_after_a_restart(own_app: RunningApp) -> None:
    async def main() -> None:
        changed = asyncio.Event()
        url = f"ws://{own_app.host}/socket"
        sockets = {
            "ws": Socket(url, params={"user_id": "py-ws"}),
            "lp": Socket(url, params={"user_id": "py-lp"}, transport=LongPoll),
        }
        closes = dict.fromkeys(sockets, 0)

        def closed(name: str) -> None:
            closes[name] += 1
            changed.set()

        channels, presences, first_refs = {}, {}, {}
        try:
            for name, socket in sockets.items():
                socket.on_close(functools.partial(closed, name))
                socket.on_open(changed.set)
                await socket.connect()
                channel = socket.channel("room:restart", {"device": name})
                presences[name] = Presence(channel)
                presences[name].on_sync(changed.set)
                await channel.join(timeout=WAIT)
                channels[name], first_refs[name] = channel, channel.join_ref
                assert await channel.push("ping", {"before": name}) == Reply("ok", {"before": name})

            await asyncio.to_thread(restart, own_app)

            def rejoined() -> bool:
                return all(
                    closes[name] >= 1
                    and channel.state is ChannelState.JOINED
                    and channel.join_ref != first_refs[name]
                    and sorted(presences[name].state) == ["py-lp", "py-ws"]
                    for name, channel in channels.items()
                )

            await asyncio.wait_for(wait_until(rejoined, changed), RESTART_WAIT)
            for name, channel in channels.items():
                assert await channel.push("ping", {"after": name}) == Reply("ok", {"after": name})
                assert sockets[name].connections >= 2
        finally:
            for socket in sockets.values():
                await socket.disconnect()

    run_long(main)


def test_python_client_heartbeat_timeout_when_the_server_stops(own_app: RunningApp) -> None:
    """SIGSTOP: the connection stays open but nothing answers; the client closes it after
    its heartbeat window, and reconnects and rejoins once the app runs again."""

    async def main() -> None:
        changed = asyncio.Event()
        closed = asyncio.Event()
        socket = Socket(f"ws://{own_app.host}/socket", params={"user_id": "py-hb"}, heartbeat_interval=0.3 * UNIT)
        socket.on_close(closed.set)
        socket.on_open(changed.set)
        await socket.connect()
        try:
            channel = socket.channel("room:stopped", {"device": "py"})
            Presence(channel).on_sync(changed.set)
            await channel.join(timeout=WAIT)
            first_ref = channel.join_ref
            closed.clear()
            os.killpg(own_app.proc.pid, signal.SIGSTOP)
            try:
                # Within two heartbeat intervals (and slack for a busy machine).
                await asyncio.wait_for(closed.wait(), 3 * UNIT)
                assert not socket.is_connected
            finally:
                os.killpg(own_app.proc.pid, signal.SIGCONT)
            await wait_until(lambda: channel.state is ChannelState.JOINED and channel.join_ref != first_ref, changed)
            assert await channel.push("ping", {"n": 1}) == Reply("ok", {"n": 1})
        finally:
            await socket.disconnect()

    run(main)


def run_long(main: Callable[[], Any]) -> Any:
    """`run` with room for a restart."""

    async def bounded() -> Any:
        return await asyncio.wait_for(main(), 30 * UNIT + RESTART_WAIT)

    return asyncio.run(bounded(), debug=True)


# -- alight.js in Chromium -----------------------------------------------------------------


class NodeSession:
    """A Node script that reports as it goes: its JSON lines are read as they come."""

    def __init__(self, script: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [require_js(), script, *args],
            cwd=JS_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env={**os.environ, "ALIGHT_TEST_UNIT": str(UNIT)},
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for text in self.proc.stdout:
            if text.startswith("{"):
                self.lines.put(json.loads(text))
        self.lines.put(None)

    def expect(self, check: str, timeout: float) -> dict[str, Any]:
        """The next line named ``check`` (within ``timeout`` s); fails on an error line,
        on the end of the script, or on the timeout, with everything it said."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {check!r} within {timeout} s:\n{self.transcript()}") from None
            if line is None:
                raise AssertionError(f"the script ended before {check!r}:\n{self.transcript()}")
            self.seen.append(line)
            if "error" in line:
                raise AssertionError(f"{line['check']}: {line['error']}\n{self.transcript()}")
            if line.get("check") == check:
                return line

    def transcript(self) -> str:
        stderr = ""
        if self.proc.poll() is not None and self.proc.stderr is not None:
            stderr = self.proc.stderr.read()[-3000:]
        return "\n".join(json.dumps(line) for line in self.seen) + f"\nstderr:\n{stderr}"

    def close(self) -> None:
        kill_group(self.proc, timeout=UNIT)
        self.reader.join(UNIT)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def test_alight_js_heartbeat_timeout_and_restart(own_app: RunningApp) -> None:
    require_chromium()
    session = NodeSession("alight_browser_restart.js", own_app.host, str(CHROMIUM))
    try:
        joined = session.expect("joined", 30 * UNIT)
        assert joined["pings"] == {
            "ws": {"status": "ok", "response": {"n": "ws"}},
            "lp": {"status": "ok", "response": {"n": "lp"}},
        }

        os.killpg(own_app.proc.pid, signal.SIGSTOP)
        try:
            timeout = session.expect("heartbeat_timeout", 5 * UNIT)
        finally:
            os.killpg(own_app.proc.pid, signal.SIGCONT)
        assert timeout["close"] == {"code": 1000, "reason": "heartbeat timeout"}
        assert timeout["channel_error"] == "heartbeat_timeout"
        recovered = session.expect("heartbeat_recovered", 15 * UNIT)
        assert recovered["ping"] == {"status": "ok", "response": {"after": "heartbeat"}}

        restart(own_app)
        restarted = session.expect("restarted", RESTART_WAIT)
        assert restarted["closes"]["ws"] >= 1
        assert restarted["closes"]["lp"] >= 1
        assert restarted["new_join_refs"] is True
        for name in ("ws", "lp"):
            assert restarted["pings"][name] == {"status": "ok", "response": {"after": name}}
            assert restarted["presence"][name] == ["alice-lp", "alice-ws"]
        assert restarted["conns"] == {"ws": "WebSocket", "lp": "LongPoll"}
        # Chromium logs the refused connections in the console; nothing may throw.
        assert session.expect("done", 10 * UNIT)["page_errors"] == []
    finally:
        session.close()
