"""The Redis adapter under faults, on real node processes and a real Redis server.

What `alight.cluster.redis` promises when Redis misbehaves: the node keeps serving, every
loss is counted (``dropped`` by the sender, ``lost`` by the receiver), frames that are not
ours are rejected unread, and everything flows again once Redis is back. The adapter's
conformance with the mesh is `test_pubsub_conformance`; phoenix.js, long-poll and presence
over Redis are `test_cluster_app` (its ``redis`` runs).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from testkit.cluster import AppNode, wait_for
from testkit.redis_server import RedisServer

from alight.cluster._data_codec import seal

pytestmark = pytest.mark.slow  # OS processes

CHANNEL = "alight:reference.pubsub"  # the reference app's endpoint is named "reference"


@pytest.fixture
def nodes() -> Iterator[list[AppNode]]:
    started: list[AppNode] = []
    yield started
    for node in started:
        node.kill()


def _start(nodes: list[AppNode], name: str, url: str) -> AppNode:
    node = AppNode(name, [], env={"ALIGHT_TEST_PUBSUB": url})
    nodes.append(node)
    return node


def _stats(node: AppNode) -> dict[str, Any]:
    stats: dict[str, Any] = node.request("GET", "/test/stats")
    return stats


def _ticks(node: AppNode, topic: str) -> list[int]:
    got = node.request("GET", f"/test/received?topic={topic}")["messages"]
    return [m["broadcast"][1]["n"] for m in got if "broadcast" in m]


def _broadcast(node: AppNode, topic: str, n: int = 1) -> None:
    node.request("POST", f"/test/broadcast?topic={topic}&n={n}")


def test_redis_down_at_start_then_up(redis_server: RedisServer, nodes: list[AppNode]) -> None:
    redis_server.stop()  # the port is known and free: nothing listens there yet
    a = _start(nodes, "a", redis_server.url)
    b = _start(nodes, "b", redis_server.url)
    b.request("POST", "/test/subscribe?topic=late")
    _broadcast(a, "late", 5)  # Redis is down: dropped at once, and counted
    assert _stats(a)["dropped"] >= 5
    redis_server.start()
    wait_for("a and b hear each other", lambda: a.nodes() == ["b"] and b.nodes() == ["a"])
    _broadcast(a, "late", 3)
    wait_for("broadcasts after Redis came up", lambda: len(_ticks(b, "late")) >= 3)
    assert _ticks(b, "late") == [0, 1, 2]  # the 5 made while Redis was down never arrive
    assert _stats(b)["lost"] == 0  # b never heard a before: nothing to call lost


def test_redis_restart_counts_the_loss_and_presence_converges(redis_server: RedisServer, nodes: list[AppNode]) -> None:
    a = _start(nodes, "a", redis_server.url)
    b = _start(nodes, "b", redis_server.url)
    a.track("room:r", "on_a")
    b.track("room:r", "on_b")
    both = ["on_a", "on_b"]
    wait_for("both presences on both", lambda: a.presence("room:r") == both == b.presence("room:r"))
    b.request("POST", "/test/subscribe?topic=t")
    _broadcast(a, "t", 10)
    wait_for("10 broadcasts on b", lambda: len(_ticks(b, "t")) == 10)
    redis_server.stop(kill=True)
    _broadcast(a, "t", 10)  # while Redis is away: dropped on a
    redis_server.start()
    # Beyond the down period the other node's presences left; they come back.
    wait_for("presences converge after the restart", lambda: a.presence("room:r") == both == b.presence("room:r"))
    wait_for("a publishes again", lambda: _publishes(a))
    _broadcast(a, "t", 5)
    wait_for("broadcasts flow again", lambda: len(_ticks(b, "t")) >= 15)
    assert _ticks(b, "t") == [*range(10), *range(5)]
    sa, sb = _stats(a), _stats(b)
    assert sa["dropped"] >= 10
    assert sa["disconnects"] >= 1
    assert sb["disconnects"] >= 1
    assert sb["lost"] >= 10  # b saw the gap in a's sequence: what it missed is counted


def _publishes(node: AppNode) -> bool:
    """One broadcast through ``node``: did Redis take it (within half a second)? False
    while the node still takes Redis for down, so that `wait_for` asks again."""
    before = _stats(node)["published"]
    node.request("POST", "/test/broadcast?topic=probe&n=1")
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:  # bounded: a poll of the node's counters
        if _stats(node)["published"] > before:
            return True
        time.sleep(0.05)
    return False


def test_frames_that_are_not_ours_are_rejected_and_replays_dropped(
    redis_server: RedisServer, nodes: list[AppNode]
) -> None:
    a = _start(nodes, "a", redis_server.url)
    b = _start(nodes, "b", redis_server.url)
    b.request("POST", "/test/subscribe?topic=sec")
    client = redis.Redis.from_url(redis_server.url)
    spy = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    spy.subscribe(CHANNEL)
    _broadcast(a, "sec", 1)
    wait_for("the genuine broadcast on b", lambda: _ticks(b, "sec") == [0])
    genuine = _next_frame(spy, b"sec")
    before = _stats(b)
    for frame in (
        b"not ours at all",
        b"\xa1al1" + bytes(40) + b"\x90",  # our magic, no valid signature
        seal(b"k" * 32, CHANNEL.encode(), bytes(8), b"\x96"),  # sealed with another key
        genuine[:-1] + bytes([genuine[-1] ^ 1]),  # altered in one bit
        b"\x00" * 17_000_000,  # over the size bound
    ):
        client.publish(CHANNEL, frame)
    client.publish(CHANNEL + ":b", genuine)  # replayed onto another channel: its seal is for CHANNEL
    client.publish(CHANNEL, genuine)  # replayed as is: its sequence number is old
    wait_for("every bad frame counted", lambda: _stats(b)["rejected"] - before["rejected"] >= 6)
    wait_for("the replay counted", lambda: _stats(b)["replayed"] - before["replayed"] >= 1)
    _broadcast(a, "sec", 2)
    wait_for("b still served", lambda: len(_ticks(b, "sec")) == 3)
    assert _ticks(b, "sec") == [0, 0, 1]  # nothing of the forged or replayed frames arrived
    spy.close()
    client.close()


def _next_frame(spy: Any, marker: bytes) -> bytes:
    """The first frame on the spied channel whose body mentions ``marker``."""
    for _ in range(20):
        message = spy.get_message(timeout=0.5)
        if message and message["type"] == "message" and marker in message["data"]:
            frame: bytes = message["data"]
            return frame
    raise AssertionError("no frame seen")


def test_two_live_nodes_with_one_name_are_reported(redis_server: RedisServer, nodes: list[AppNode]) -> None:
    first = _start(nodes, "same", redis_server.url)
    second = _start(nodes, "same", redis_server.url)
    # Each hears the other's heartbeats under its own name: a conflict, counted, dropped.
    wait_for("the conflict seen", lambda: _stats(first)["conflicts"] > 0 and _stats(second)["conflicts"] > 0)
    assert _stats(first)["received"] == _stats(first)["replicas_received"] == 0


def test_a_stalled_redis_drops_and_recovers(redis_server: RedisServer, nodes: list[AppNode]) -> None:
    a = _start(nodes, "a", redis_server.url)
    b = _start(nodes, "b", redis_server.url)
    wait_for("a and b hear each other", lambda: a.nodes() == ["b"] and b.nodes() == ["a"])
    b.request("POST", "/test/subscribe?topic=slow")
    redis_server.pause()
    try:
        _broadcast(a, "slow", 5)
        # The pipeline times out (command_timeout, 2 s): dropped and counted, the node serves on.
        wait_for("the stalled publish counted", lambda: _stats(a)["dropped"] >= 5)
        assert a.presence("room:none") == []
    finally:
        redis_server.resume()
    wait_for("a publishes again", lambda: _publishes(a))
    _broadcast(a, "slow", 2)
    wait_for("broadcasts after the stall", lambda: len(_ticks(b, "slow")) >= 2)
    assert _ticks(b, "slow")[-2:] == [0, 1]
