"""Crash reports are bounded and never raise, whatever the message or reason
(a payload nested past the recursion limit, a huge string, a ``__repr__`` that raises):
in OTP nothing in reporting can keep an exit signal from links and monitors."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alight.actors import Pid, safe_repr
from alight.actors._crash import REPR_LIMIT, report
from alight.actors._process import Process

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class ReprRaises:
    def __repr__(self) -> str:
        raise ValueError("no repr for you")


class ReprRecurses:
    def __repr__(self) -> str:
        return repr(self)


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str either")

    def __repr__(self) -> str:
        raise RuntimeError("nor repr")


@dataclass(frozen=True)
class Envelope:
    payload: Any


def deep(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for index in range(depth):
        value = [value] if index % 2 else {"k": value}
    return value


# Built, not sampled: Hypothesis shows sampled values with repr, which these break.
nasty_leaves = st.builds(ReprRaises) | st.builds(ReprRecurses) | st.just("x" * 100_000) | st.just(b"\xff") | st.none()
nasty = st.recursive(
    st.integers() | st.text(max_size=5) | nasty_leaves,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=3), children, max_size=3)
        | children.map(Envelope)
        | children.map(lambda v: (v,))
    ),
    max_leaves=10,
)


@PROPERTY
@given(value=nasty, depth=st.sampled_from([0, 10, 300, 5_000]))
def test_safe_repr_is_bounded_and_never_raises(value: Any, depth: int) -> None:
    text = safe_repr(deep(depth, value))
    assert isinstance(text, str)
    assert len(text) <= REPR_LIMIT + 3


def a_process() -> Process:
    return Process(Pid("test@host", 1, 42), node=None)  # type: ignore[arg-type]


@PROPERTY
@given(
    message=nasty,
    reason=nasty | st.builds(UnprintableError) | st.builds(RecursionError, st.just("deep")),
    depth=st.sampled_from([0, 2_000]),
)
def test_report_logs_one_record_and_never_raises(message: Any, reason: Any, depth: int) -> None:
    proc = a_process()
    proc.last_message = deep(depth, message)
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            record.getMessage()  # formatting happens here: it must not raise either
            records.append(record)

    logger = logging.getLogger("alight.actors.crash")
    handler = Collect()
    logger.addHandler(handler)
    try:
        report(proc, deep(depth, reason))
    finally:
        logger.removeHandler(handler)
    assert len(records) == 1
    assert "<test@host.42.0> crashed" in records[0].getMessage()


def test_a_deep_message_is_shown_shallow_with_its_fields() -> None:
    proc = a_process()
    proc.last_message = Envelope({"d": deep(1_000)})
    text = safe_repr(proc.last_message)
    assert text.startswith("Envelope(payload={'d': ")
    assert "..." in text


@pytest.mark.parametrize("value", [ReprRaises(), UnprintableError()])
def test_a_repr_that_raises_is_named_not_raised(value: Any) -> None:
    assert type(value).__name__ in safe_repr(value)


def test_a_traceback_of_a_deep_recursion_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    def recurse(n: int) -> int:
        return recurse(n + 1) + 1

    try:
        recurse(0)
    except RecursionError as error:
        reason = error
    with caplog.at_level(logging.ERROR, logger="alight.actors.crash"):
        report(a_process(), reason)
    assert len(caplog.records) == 1
    assert len(caplog.records[0].getMessage()) < 30_000
