"""The mailbox: selective receive keeps arrival order; timeouts; the non-blocking variant.

The property tests compare the mailbox with a pure model, a list from which
"receive" removes the first element that matches. They run twice: on a bare
`Mailbox` (no loop), and inside real processes where the messages arrive while the
receiver waits, so that the save pointer of a waiting receive is exercised too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from testkit import UNIT, Runner

from alight.actors import Node, ReceiveTimeout, receive, receive_nowait, self_pid, send, spawn
from alight.actors._mailbox import Mailbox, Match


@dataclass(frozen=True)
class A:
    n: int


@dataclass(frozen=True)
class B:
    n: int


@dataclass(frozen=True)
class C:
    n: int


KINDS: dict[str, type] = {"A": A, "B": B, "C": C}


def _even(message: Any) -> bool:
    return isinstance(message, A | B | C) and message.n % 2 == 0


PATTERNS: dict[str, Match] = {
    "any": None,
    "A": A,
    "B": B,
    "A|C": (A, C),
    "even": _even,
}


def matches(pattern: str, message: Any) -> bool:
    match = PATTERNS[pattern]
    if match is None:
        return True
    if isinstance(match, type | tuple):
        return isinstance(message, match)
    return match(message)


def take_first(model: list[Any], pattern: str) -> Any:
    """The model of a selective receive: remove and return the first match, or None."""
    for index, message in enumerate(model):
        if matches(pattern, message):
            return model.pop(index)
    return None


Op = tuple[str, str, int]
"""("send", kind, n) or ("recv", pattern, 0)."""

ops_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.sampled_from(sorted(KINDS)), st.integers(0, 9)),
        st.tuples(st.just("recv"), st.sampled_from(sorted(PATTERNS)), st.just(0)),
    ),
    max_size=40,
)


# -- a bare mailbox, no event loop -------------------------------------------------


@given(ops_strategy)
def test_selective_receive_nowait_matches_model(ops: list[Op]) -> None:
    mailbox = Mailbox()
    model: list[Any] = []
    for op, what, n in ops:
        if op == "send":
            message = KINDS[what](n)
            mailbox.put(message)
            model.append(message)
        else:
            assert mailbox.receive_nowait(PATTERNS[what], None) == take_first(model, what)
    assert mailbox.messages() == model
    assert len(mailbox) == len(model)


def test_receive_nowait_counts_and_remembers_the_message() -> None:
    mailbox = Mailbox()
    mailbox.put("a")
    mailbox.put(1)
    assert mailbox.receive_nowait(int) == 1
    assert mailbox.received == 1
    assert mailbox.last_message == 1
    assert mailbox.receive_nowait(int, "none") == "none"
    assert mailbox.received == 1


def test_receive_nowait_without_default_raises() -> None:
    mailbox = Mailbox()
    with pytest.raises(ReceiveTimeout):
        mailbox.receive_nowait()
    mailbox.put("a")
    with pytest.raises(ReceiveTimeout):
        mailbox.receive_nowait(int)
    assert mailbox.messages() == ["a"]


def test_drop_removes_without_counting() -> None:
    mailbox = Mailbox()
    for message in ("a", 1, "b"):
        mailbox.put(message)
    assert mailbox.drop(lambda m: isinstance(m, int))
    assert not mailbox.drop(lambda m: isinstance(m, int))
    assert mailbox.messages() == ["a", "b"]
    assert mailbox.received == 0


@pytest.mark.parametrize("pattern", [42, "str", (int, 3), [int]])
def test_bad_pattern_raises_type_error(pattern: Any) -> None:
    mailbox = Mailbox()
    with pytest.raises(TypeError, match="receive pattern"):
        mailbox.receive_nowait(pattern)
    mailbox.put(1)
    with pytest.raises(TypeError, match="receive pattern"):
        mailbox.receive_nowait(pattern)
    assert mailbox.messages() == [1]


# -- inside processes, with messages arriving while the receiver waits ------------


@dataclass(frozen=True)
class _Deliver:
    messages: tuple[Any, ...]
    then: Any
    """Sent back after the messages: a marker the receiver can wait for."""


@dataclass(frozen=True)
class _Synced:
    serial: int


async def _sender(receiver: Any) -> None:
    # Sends one message per turn of the loop, so that they arrive while the receiver
    # is already waiting (after it scanned what was queued).
    while True:
        order: _Deliver = await receive(_Deliver)
        for message in order.messages:
            send(receiver, message)
            await asyncio.sleep(0)
        send(receiver, order.then)


async def _check_ops_in_process(ops: list[Op]) -> None:
    me = self_pid()
    sender = spawn(_sender, me)
    model: list[Any] = []
    pending: list[Any] = []
    syncs = 0
    remaining = list(ops)
    while remaining:
        op, what, n = remaining.pop(0)
        if op == "send":
            pending.append(KINDS[what](n))
            continue
        model.extend(pending)
        expected = take_first(model, what)
        if expected is None:
            # No match yet: deliver the following sends while waiting, up to a match.
            while remaining and expected is None:
                if remaining[0][0] != "send":
                    break
                _, kind, m = remaining.pop(0)
                message = KINDS[kind](m)
                pending.append(message)
                model.append(message)
                expected = take_first(model, what)
        if expected is None:
            # Nothing will ever match: make sure everything sent has arrived, then
            # look without waiting.
            syncs += 1
            send(sender, _Deliver(tuple(pending), _Synced(syncs)))
            pending = []
            await receive(_Synced, timeout=5 * UNIT)
            assert receive_nowait(PATTERNS[what], None) is None
            continue
        send(sender, _Deliver(tuple(pending), None))
        pending = []
        got = await receive(PATTERNS[what], timeout=5 * UNIT)
        assert got == expected
        await receive(lambda m: m is None, timeout=5 * UNIT)  # the sender's batch is complete
    model.extend(pending)
    send(sender, _Deliver(tuple(pending), _Synced(-1)))
    await receive(_Synced, timeout=5 * UNIT)
    leftover = []
    while (message := receive_nowait(default=None)) is not None:
        leftover.append(message)
    assert leftover == model


@settings(max_examples=60, deadline=None)
@given(ops_strategy)
def test_selective_receive_in_process_matches_model(ops: list[Op]) -> None:
    # A fresh node per example: Hypothesis runs many examples per test function.
    Node("prop@127.0.0.1", watchdog_threshold=None).run(_check_ops_in_process, ops, debug=True)


# -- receive inside a process: timeouts and defaults --------------------------------


def test_receive_timeout_raises(run: Runner) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ReceiveTimeout):
            await receive(timeout=0.05 * UNIT)
        assert loop.time() - started >= 0.04 * UNIT

    run(main)


def test_receive_timeout_returns_default(run: Runner) -> None:
    async def main() -> Any:
        send(self_pid(), "unmatched")
        return await receive(int, timeout=0.02 * UNIT, default="nothing")

    assert run(main) == "nothing"


def test_receive_timeout_zero_only_looks_at_the_queue(run: Runner) -> None:
    async def main() -> list[Any]:
        send(self_pid(), "a")
        send(self_pid(), 1)
        results = [await receive(int, timeout=0), await receive(int, timeout=0, default=None)]
        with pytest.raises(ReceiveTimeout):
            await receive(int, timeout=0)
        results.append(await receive(timeout=0))
        return results

    assert run(main) == [1, None, "a"]


def test_receive_timeout_is_not_reset_by_unmatched_messages(run: Runner) -> None:
    async def chatter(target: Any) -> None:
        while True:
            send(target, "noise")
            await asyncio.sleep(0.005 * UNIT)

    async def main() -> int:
        spawn(chatter, self_pid())
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await receive(int, timeout=0.1 * UNIT, default=None) is None
        assert loop.time() - started < 2 * UNIT
        return len([m for m in iter(lambda: receive_nowait(default=None), None)])

    assert run(main) > 0


def test_matching_message_beats_the_timeout(run: Runner) -> None:
    async def later(target: Any) -> None:
        await asyncio.sleep(0.01 * UNIT)
        send(target, "noise")
        send(target, 7)

    async def main() -> Any:
        spawn(later, self_pid())
        return await receive(int, timeout=5 * UNIT), receive_nowait()

    assert run(main) == (7, "noise")


def test_receive_nowait_in_process(run: Runner) -> None:
    async def main() -> list[Any]:
        me = self_pid()
        send(me, "x")
        send(me, 2)
        got = [receive_nowait(int), receive_nowait(default="empty-int"), receive_nowait(default="empty")]
        with pytest.raises(ReceiveTimeout):
            receive_nowait()
        return got

    assert run(main) == [2, "x", "empty"]


def test_predicate_and_tuple_patterns(run: Runner) -> None:
    async def main() -> list[Any]:
        me = self_pid()
        for message in ("s", 1, 2.5, b"b", 3):
            send(me, message)
        odd: Callable[[Any], bool] = lambda m: isinstance(m, int) and m % 2 == 1  # noqa: E731
        return [
            await receive((float, bytes)),
            await receive(odd),
            await receive(odd),
            await receive(),
            await receive(),
        ]

    assert run(main) == [2.5, 1, 3, "s", b"b"]


def test_bad_pattern_in_process_raises_type_error(run: Runner) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="receive pattern"):
            await receive(42)  # type: ignore[arg-type]

    run(main)
