"""The official phoenix client's ``Presence`` (npm ``phoenix@1.8.16``: onSync,
onJoin, onLeave, list) against the reference app's presence, over WebSocket and
long-poll: two users, one user on two sockets (one key, two metas), a leave, a
channel crash and rejoin, a disconnect.

``tests/js/presence.js`` drives the clients and prints what each saw; each test
checks one observation of one run (a run per transport, per module).
"""

from __future__ import annotations

import pytest
from testkit import UNIT
from testkit.processes import NodeRun, RunningApp, run_node

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane


@pytest.fixture(scope="module", params=["websocket", "longpoll"])
def seen(request: pytest.FixtureRequest, reference_app: RunningApp) -> NodeRun:
    run = run_node("presence.js", reference_app.host, request.param, timeout=50 * UNIT)
    assert run.returncode == 0, run.transcript()
    return run


def test_every_step_finished(seen: NodeRun) -> None:
    errors = [line for line in seen.lines if "error" in line]
    assert not errors, seen.transcript()
    assert "done" in seen.by_check, seen.transcript()


def test_two_users_list_each_other(seen: NodeRun) -> None:
    two = seen["two_users"]
    assert two["alice"] == two["bob"] == {"alice": ["a1"], "bob": ["b1"]}
    assert two["joined"][-1] == ["b1"]
    assert all(isinstance(ref, str) and len(ref) == 16 for ref in two["refs"])


def test_one_user_on_two_sockets_is_one_key_with_two_metas(seen: NodeRun) -> None:
    two = seen["two_sockets"]
    expected = {"alice": ["a1", "a2"], "bob": ["b1"]}
    assert two["bob"] == two["alice"] == two["alice2"] == expected
    assert two["join"]["had"] == 1
    assert [meta["device"] for meta in two["join"]["metas"]] == ["a2"]


def test_a_leave_removes_one_meta(seen: NodeRun) -> None:
    leave = seen["leave"]
    assert leave["bob"] == {"alice": ["a1"], "bob": ["b1"]}
    [left] = leave["leaves"]
    assert left["key"] == "alice"
    assert left["remaining"] == 1
    assert [meta["device"] for meta in left["metas"]] == ["a2"]


def test_a_crashed_channel_leaves_and_comes_back_on_rejoin(seen: NodeRun) -> None:
    crash = seen["crash_rejoin"]
    assert crash["bob"] == crash["alice"] == {"alice": ["a1"], "bob": ["b1"]}
    assert "alice" in crash["left"]
    assert crash["rejoins"] >= 2
    assert crash["newRef"] is True


def test_a_disconnect_leaves(seen: NodeRun) -> None:
    gone = seen["disconnect"]
    if "skipped" in gone:
        pytest.skip(f"long-poll: {gone['skipped']} (docs/protocol.md §5), too slow for this test")
    assert gone["alice"] == {"alice": ["a1"]}
    assert gone["leaves"] == [["bob", 0]]
