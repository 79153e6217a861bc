"""Crash reports: one log record per abnormal exit, none for orderly ones."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from testkit import UNIT, Runner, equals

from alight import actors
from alight.actors import (
    Down,
    ExitProcess,
    Pid,
    current_node,
    receive,
    register,
    self_pid,
    send,
    spawn_link,
    spawn_monitor,
    trap_exit,
)

WAIT = 5 * UNIT
CRASH_LOGGER = "alight.actors.crash"


def crash_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == CRASH_LOGGER]


async def handler(report_to: Pid) -> None:
    register("handler")
    send(report_to, "ready")
    while True:
        message = await receive()
        if message == {"op": "divide", "by": 0}:
            _ = 1 / message["by"]


def test_one_report_per_crash_with_everything(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> tuple[Pid, int]:
        pid, _ = spawn_monitor(handler, self_pid())
        await receive(equals("ready"), timeout=WAIT)
        send(pid, "harmless")
        send(pid, {"op": "divide", "by": 0})
        down = await receive(Down, timeout=WAIT)
        assert isinstance(down.reason, ZeroDivisionError)
        return pid, current_node().crashes

    with caplog.at_level(logging.ERROR, logger=CRASH_LOGGER):
        pid, crashes = run(main)
    records = crash_records(caplog)
    assert len(records) == 1
    assert crashes == 1
    text = records[0].getMessage()
    assert records[0].levelno == logging.ERROR
    assert "crashed" in text
    assert "handler" in text  # the registered name and the function
    assert "ZeroDivisionError" in text  # the reason
    assert "Traceback" in text
    assert "_ = 1 / message" in text  # the line that failed
    assert "{'op': 'divide', 'by': 0}" in text  # the message being handled
    fields: dict[str, Any] = records[0].alight  # type: ignore[attr-defined]
    assert fields["pid"] == repr(pid)
    assert fields["name"] == "handler"
    assert fields["message"] == "{'op': 'divide', 'by': 0}"
    assert "ZeroDivisionError" in fields["reason"]


def test_exit_process_with_an_abnormal_reason_is_reported_once(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    async def leave() -> None:
        raise ExitProcess({"bad": "state"})

    async def main() -> None:
        spawn_monitor(leave)
        await receive(Down, timeout=WAIT)

    with caplog.at_level(logging.ERROR, logger=CRASH_LOGGER):
        run(main)
    records = crash_records(caplog)
    assert len(records) == 1
    assert "{'bad': 'state'}" in records[0].getMessage()


def test_no_report_for_orderly_exits(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    async def leave(reason: Any) -> None:
        raise ExitProcess(reason)

    async def returns() -> int:
        return 1

    async def waits() -> None:
        await receive()

    async def main() -> None:
        for reason in ("normal", "shutdown", ("shutdown", "done")):
            spawn_monitor(leave, reason)
            await receive(Down, timeout=WAIT)
        spawn_monitor(returns)
        await receive(Down, timeout=WAIT)
        # killed or stopped from outside: the process did not crash
        for reason in ("kill", "shutdown", "some reason"):
            pid, _ = spawn_monitor(waits)
            actors.exit(pid, reason)
            await receive(Down, timeout=WAIT)

    with caplog.at_level(logging.ERROR, logger=CRASH_LOGGER):
        run(main)
    assert crash_records(caplog) == []


def test_a_crash_cascading_over_links_is_reported_once(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    async def crasher() -> None:
        await receive()
        raise RuntimeError("root cause")

    async def middle(report_to: Pid) -> None:
        child = spawn_link(crasher)
        send(report_to, child)
        await receive()

    async def main() -> None:
        trap_exit()
        m = spawn_link(middle, self_pid())
        child = await receive(Pid, timeout=WAIT)
        send(child, "go")
        await receive(lambda message: getattr(message, "pid", None) == m, timeout=WAIT)

    with caplog.at_level(logging.ERROR, logger=CRASH_LOGGER):
        run(main)
    records = crash_records(caplog)
    assert len(records) == 1
    assert "root cause" in records[0].getMessage()


def test_an_error_of_main_goes_to_the_caller_not_the_log(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        raise LookupError("for the caller")

    with caplog.at_level(logging.ERROR, logger=CRASH_LOGGER), pytest.raises(LookupError, match="for the caller"):
        run(main)
    assert crash_records(caplog) == []


class _ReprRaises:
    def __repr__(self) -> str:
        raise ValueError("no repr")


class _UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"d": [value]}
    return value


NASTY = [
    ("a message nested 1,000 levels", _deep(1_000), RuntimeError("crash requested")),
    ("a reason nested 1,000 levels", "go", _deep(1_000)),
    ("a message whose repr raises", _ReprRaises(), RuntimeError("crash")),
    ("an exception whose str and repr raise", "go", _UnprintableError()),
    ("a ten-megabyte message", "x" * 10_000_000, RuntimeError("crash")),
]


@pytest.mark.parametrize(("case", "message", "reason"), NASTY, ids=[case for case, _, _ in NASTY])
def test_links_and_monitors_hear_of_a_crash_however_nasty_its_message_or_reason(
    run: Runner, caplog: pytest.LogCaptureFixture, case: str, message: Any, reason: Any
) -> None:
    async def crasher() -> None:
        await receive()
        if isinstance(reason, BaseException):
            raise reason
        raise ExitProcess(reason)

    async def main() -> tuple[bool, bool]:
        trap_exit()
        pid = spawn_link(crasher)
        ref = actors.monitor(pid)
        send(pid, message)
        down = await receive(lambda m: isinstance(m, Down) and m.ref == ref, timeout=WAIT)
        exit_ = await receive(lambda m: isinstance(m, actors.Exit) and m.pid == pid, timeout=WAIT)
        return down.reason is reason, exit_.reason is reason

    with caplog.at_level(logging.ERROR, logger=CRASH_LOGGER):
        assert run(main) == (True, True)
    records = crash_records(caplog)
    assert len(records) == 1, case
    assert len(records[0].getMessage()) < 30_000
