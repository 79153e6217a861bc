"""The watchdog names a process that holds the loop; blocking work runs off the loop."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from testkit import UNIT, equals

from alight.actors import (
    BlockReport,
    Node,
    Offloaded,
    Pid,
    blocking,
    current_node,
    receive,
    register,
    run_blocking,
    self_pid,
    send,
    spawn,
)

WAIT = 5 * UNIT


def _blocking_function_of_the_test(seconds: float) -> None:
    time.sleep(seconds)  # a blocking call inside a process: exactly what the watchdog is for


async def hog(report_to: Pid) -> None:
    register("hog")
    send(report_to, "registered")
    await receive(equals("go"))
    _blocking_function_of_the_test(0.3 * UNIT)
    await receive()


def test_watchdog_reports_a_blocking_process(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> tuple[Pid, BlockReport, list[BlockReport]]:
        node = current_node()
        node.watchdog.subscribe(self_pid())
        pid = spawn(hog, self_pid())
        await receive(equals("registered"), timeout=WAIT)
        send(pid, "go")
        report: BlockReport = await receive(BlockReport, timeout=WAIT)
        return pid, report, list(node.watchdog.reports)

    node = Node("watched@127.0.0.1", watchdog_threshold=0.1 * UNIT)
    with caplog.at_level(logging.WARNING, logger="alight.actors.watchdog"):
        pid, report, kept = node.run(main, debug=True)
    assert report.pid == pid
    assert report.name == "hog"
    assert report.entry.endswith("hog")
    assert "_blocking_function_of_the_test" in report.stack
    assert report.blocked_for > 0.1 * UNIT
    assert report.total is not None
    assert report.total >= 0.2 * UNIT
    assert report in kept
    assert node.watchdog.reported >= 1
    warnings = [r for r in caplog.records if r.name == "alight.actors.watchdog"]
    assert any("hog" in r.getMessage() and "_blocking_function_of_the_test" in r.getMessage() for r in warnings)


def test_watchdog_is_quiet_when_nobody_blocks() -> None:
    async def main() -> int:
        for _ in range(20):
            send(self_pid(), "tick")
            await receive()
        return current_node().watchdog.reported

    # A generous threshold: this checks for false reports, not for speed on a busy machine.
    assert Node("calm@127.0.0.1", watchdog_threshold=0.5 * UNIT).run(main, debug=True) == 0


def test_watchdog_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="threshold"):
        Node("x@h", watchdog_threshold=0)


def test_run_blocking_delivers_offloaded(run: Any) -> None:
    def work(a: int, b: int) -> tuple[int, str]:
        time.sleep(0.01 * UNIT)
        return a + b, threading.current_thread().name

    async def main() -> None:
        ref = run_blocking(work, 2, 3)
        result: Offloaded = await receive(Offloaded, timeout=WAIT)
        assert result.ref == ref
        assert result.error is None
        total, thread = result.value
        assert total == 5
        assert thread != threading.current_thread().name

    run(main)


def test_run_blocking_delivers_the_error(run: Any) -> None:
    def fail() -> None:
        raise OSError("disk on fire")

    async def main() -> None:
        ref = run_blocking(fail)
        result: Offloaded = await receive(Offloaded, timeout=WAIT)
        assert result.ref == ref
        assert isinstance(result.error, OSError)
        assert result.value is None

    run(main)


def test_blocking_returns_or_raises(run: Any) -> None:
    def double(x: int) -> int:
        return 2 * x

    def fail() -> None:
        raise KeyError("missing")

    async def main() -> int:
        send(self_pid(), "unrelated")
        value = await blocking(double, 21)
        with pytest.raises(KeyError, match="missing"):
            await blocking(fail)
        assert await receive(timeout=0) == "unrelated"  # left in place by the selective receive
        return value

    assert run(main) == 42


def test_blocking_work_does_not_stall_other_processes(run: Any) -> None:
    started = threading.Event()
    release = threading.Event()

    def wait_for_release() -> str:
        started.set()
        release.wait(WAIT)
        return "released"

    async def pinger(to: Pid) -> None:
        send(to, "pong")

    async def main() -> Any:
        ref = run_blocking(wait_for_release)
        # while the thread blocks, processes still run
        spawn(pinger, self_pid())
        assert await receive(equals("pong"), timeout=WAIT) == "pong"
        release.set()
        result: Offloaded = await receive(Offloaded, timeout=WAIT)
        assert result.ref == ref
        return result.value

    assert run(main) == "released"
