"""The PubSub conformance suite: what every cross-node adapter does, run against each.

Every test runs on two real node processes (`testkit.apps.app_node`) linked once by the
mesh (`alight.cluster.pubsub.ClusterAdapter`) and once by a Redis server and nothing else
(`alight.cluster.redis.RedisAdapter`): the ``app_cluster`` fixture. Subscribers record
what they receive (``/test/subscribe``, ``/test/received``); broadcasts are made by the
node's own PubSub (``/test/broadcast``). Phoenix's PubSub contract, per adapter:

- a broadcast reaches every subscriber of the topic on every node, once, and in the order
  its node made them;
- ``direct_broadcast`` reaches the named node only;
- a `Broadcast` (the fastlane's message, JSON or binary payload) and plain terms (tuples,
  bytes, nested data) arrive equal to what was sent;
- a topic with no subscriber on a node costs that node nothing visible (no error).
"""

from __future__ import annotations

from typing import Any

import pytest
from testkit.cluster import AppNode, wait_for

pytestmark = pytest.mark.slow  # OS processes

Pair = tuple[AppNode, AppNode]


def _subscribe(node: AppNode, topic: str) -> None:
    node.request("POST", f"/test/subscribe?topic={topic}")


def _broadcast(node: AppNode, topic: str, kind: str = "broadcast", n: int = 1, direct: str | None = None) -> None:
    path = f"/test/broadcast?topic={topic}&kind={kind}&n={n}"
    node.request("POST", path + (f"&direct={direct}" if direct else ""))


def _received(node: AppNode, topic: str) -> list[Any]:
    messages: list[Any] = node.request("GET", f"/test/received?topic={topic}")["messages"]
    return messages


def test_a_broadcast_reaches_every_node_once_in_order(app_cluster: Pair) -> None:
    a, b = app_cluster
    _subscribe(a, "conf:order")
    _subscribe(b, "conf:order")
    _broadcast(a, "conf:order", n=500)
    want = [{"broadcast": ["tick", {"n": n, "from": "a"}]} for n in range(500)]
    wait_for("500 broadcasts on b", lambda: len(_received(b, "conf:order")) >= 500)
    assert _received(b, "conf:order") == want
    assert _received(a, "conf:order") == want  # the origin's subscribers too, once


def test_direct_broadcast_reaches_the_named_node_only(app_cluster: Pair) -> None:
    a, b = app_cluster
    _subscribe(a, "conf:direct")
    _subscribe(b, "conf:direct")
    _broadcast(a, "conf:direct", n=3, direct="b")
    _broadcast(b, "conf:direct", n=1, direct="b")  # to itself: local
    wait_for("4 direct broadcasts on b", lambda: len(_received(b, "conf:direct")) >= 4)
    # A marker broadcast to everyone, made after: once it is on a, nothing direct is coming.
    _broadcast(b, "conf:direct", kind="term", n=1)
    wait_for("the marker on a", lambda: len(_received(a, "conf:direct")) >= 1)
    assert [m for m in _received(a, "conf:direct") if "broadcast" in m] == []
    got = _received(b, "conf:direct")
    assert sorted(m["broadcast"][1]["from"] for m in got if "broadcast" in m) == ["a", "a", "a", "b"]


def test_terms_and_binary_broadcasts_arrive_equal(app_cluster: Pair) -> None:
    a, b = app_cluster
    _subscribe(b, "conf:terms")
    _broadcast(a, "conf:terms", kind="term", n=2)
    _broadcast(a, "conf:terms", kind="binary", n=2)
    wait_for("4 messages on b", lambda: len(_received(b, "conf:terms")) >= 4)
    got = _received(b, "conf:terms")
    nested = {"nested": [1, 2.5, None, True]}
    assert got[:2] == [{"tuple": ["term", n, {"bytes": "01"}, nested]} for n in range(2)]
    assert got[2:] == [{"broadcast": ["blob", {"bytes": "00ff" + n.to_bytes(4, "big").hex()}]} for n in range(2)]


def test_a_topic_without_subscribers_elsewhere_is_harmless(app_cluster: Pair) -> None:
    a, b = app_cluster
    _broadcast(a, "conf:nobody", n=20)
    _subscribe(b, "conf:after")
    _broadcast(a, "conf:after", n=1)
    wait_for("the later broadcast on b", lambda: len(_received(b, "conf:after")) == 1)
    stats = b.request("GET", "/test/stats")
    assert stats["received"] >= 21  # every broadcast crossed; b had no subscriber for 20
