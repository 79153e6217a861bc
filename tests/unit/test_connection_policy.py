"""The connection policy as values: the decisions every transport's connection makes."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from alight.transports.base import CLOSE_PROTOCOL_ERROR, ConnLimits, TransportStats
from alight.transports.policy import CLOSED, CLOSING, OPEN, PENDING, ConnectionPolicy

LIMITS = ConnLimits(max_frame_size=100, idle_timeout=10.0, max_buffer=1_000)


def policy(max_inbound: int = 10) -> ConnectionPolicy:
    return ConnectionPolicy(LIMITS, TransportStats(), max_inbound=max_inbound)


def test_states_open_close_once_and_end() -> None:
    p = policy()
    assert p.state == PENDING
    assert not p.closed
    assert not p.start_close()  # nothing to send before it is open
    p.opened(now=5.0)
    assert p.state == OPEN
    assert p.last_seen == 5.0
    assert p.start_close()
    assert p.state == CLOSING
    assert p.closed
    assert not p.start_close()  # once
    assert not p.peer_closed()  # the client's answer to ours: nothing to echo
    assert p.state == CLOSED


def test_a_client_close_on_an_open_connection_is_answered() -> None:
    p = policy()
    p.opened(0.0)
    assert p.peer_closed()
    assert p.state == CLOSED
    assert not p.start_close()


def test_while_not_paused_any_frame_goes_out_even_one_over_the_bound() -> None:
    p = policy()
    assert p.admits(5_000, queued=0, paused=False)
    assert p.admits(10, queued=999_999, paused=False)
    assert p.stats.slow_consumer_disconnects == 0


def test_once_paused_a_frame_over_the_bound_is_a_slow_consumer() -> None:
    p = policy()
    assert p.admits(400, queued=600)  # exactly the bound
    assert not p.admits(401, queued=600)
    assert p.stats.slow_consumer_disconnects == 1


def test_frame_size_bound_and_its_count() -> None:
    p = policy()
    assert not p.frame_too_big(100)
    assert p.frame_too_big(101)
    p.refused_frame()
    assert p.stats.frames_too_big == 2


def test_idle_timeout_counts_from_the_last_client_byte() -> None:
    p = policy()
    p.opened(0.0)
    assert p.idle_left(4.0) == 6.0
    p.touch(8.0)
    assert p.idle_left(12.0) == 6.0
    assert p.idle_left(18.0) <= 0
    assert p.idle_expired() == (CLOSE_PROTOCOL_ERROR, "idle timeout")
    assert p.stats.idle_timeouts == 1


def test_inbound_credits_pause_over_the_bound_and_resume_at_half() -> None:
    p = policy(max_inbound=4)
    assert [p.inbound_sent() for _ in range(5)] == [False, False, False, False, True]
    assert not p.reading
    assert not p.inbound_sent()  # already paused: said once
    assert p.in_flight == 6
    assert [p.inbound_handled(now=1.0) for _ in range(4)] == [False, False, False, True]
    assert p.reading
    assert p.in_flight == 2


def test_a_paused_reader_is_not_idle_and_the_timeout_restarts_on_resume() -> None:
    """Back-pressure stops reading: the client is not idle then, the server is."""
    p = policy(max_inbound=1)
    p.opened(0.0)
    assert [p.inbound_sent(), p.inbound_sent()] == [False, True]  # paused at t=0
    assert p.idle_left(50.0) == 10.0  # paused far past the idle timeout: not idle
    assert not p.inbound_handled(now=50.0)
    assert p.inbound_handled(now=51.0)  # reading again: the timeout counts from now
    assert p.idle_left(55.0) == 6.0


@given(st.lists(st.booleans(), max_size=200), st.integers(min_value=0, max_value=20))
def test_pauses_and_resumes_alternate_and_reading_matches_the_last(steps: list[bool], bound: int) -> None:
    """Whatever the order of sends and credits: the shell is told to pause and to
    resume alternately, never twice in a row, and never has more than the bound in
    flight while reading."""
    p = policy(max_inbound=bound)
    told = []
    for send in steps:
        if send:
            if p.inbound_sent():
                told.append("pause")
        elif p.inbound_handled(0.0):
            told.append("resume")
        assert p.in_flight >= 0
        if p.reading:
            assert p.in_flight <= bound
    assert all(a != b for a, b in itertools.pairwise(told))
    assert p.reading == (not told or told[-1] == "resume")
