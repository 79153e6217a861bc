"""The dashboard's collector and channel on a real node (no network): what a snapshot
holds, process info and kill (and the supervisor's restart), bad input, and the
channel's join, pushes and replies (through `alight.channels.testing`)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import orjson
from testkit import UNIT, Runner

from alight.actors import (
    GenServer,
    Node,
    Reply,
    Supervisor,
    call,
    monitor,
    processes,
    receive,
    self_pid,
    send,
    spawn,
    start_child,
    whereis,
    which_children,
)
from alight.channels import Endpoint
from alight.channels.testing import connect, start_endpoint
from alight.dashboard import (
    ActionResult,
    Dashboard,
    DashboardSocket,
    ProcessAction,
    Snapshot,
    TakeSnapshot,
    Unwatch,
    Watch,
    Watching,
)

COLLECTOR = "endpoint.dashboard"


class Job(GenServer):
    async def init(self) -> None:
        pass

    async def handle_call(self, request: Any, from_: Any) -> Reply:
        return Reply("ok")


async def _start(interval: float = 1.0) -> Endpoint:
    app = Endpoint(check_origin=False, presence=True)
    Dashboard(app, interval=interval)
    await start_endpoint(app)
    jobs = Supervisor.child_spec([Job.child_spec(id="job.1", name="job.1"), Job.child_spec(id="job.2")], id="jobs")
    await start_child(self_pid().local.node.root, Supervisor.child_spec([jobs], id="workers"))
    return app


def _find(tree: dict[str, Any], *path: str) -> dict[str, Any]:
    entry = tree
    for part in path:
        matches = [child for child in entry["children"] if child["id"] == part]
        assert matches, f"no {part!r} under {entry['id']!r}: {[c['id'] for c in entry['children']]}"
        entry = matches[0]
    return entry


async def _child(sup: Any, child_id: str) -> Any:
    return next(c.pid for c in await which_children(sup) if c.id == child_id)


async def _jobs() -> Any:
    return await _child(await _child(self_pid().local.node.root, "workers"), "jobs")


async def _restarted(child_id: str, old: Any) -> Any:
    """The new pid of ``child_id`` under ``jobs``, once its supervisor restarted it."""
    deadline = time.monotonic() + 5 * UNIT
    while True:
        pid = await _child(await _jobs(), child_id)
        if pid is not None and pid != old:
            return pid
        assert time.monotonic() < deadline, f"{child_id} was not restarted"
        await receive(timeout=0.01, default=None)


def dashboard_socket(app: Endpoint) -> type[DashboardSocket]:
    dashboard = app.extension(Dashboard)
    assert dashboard is not None
    return dashboard.socket


def test_snapshot_shows_the_node_its_tree_processes_and_topics(run: Runner, node: Node) -> None:
    async def main() -> dict[str, Any]:
        app = await _start()
        holder = self_pid()
        app.pubsub.subscribe(holder, "room:1")
        assert app.presence is not None
        await app.presence.track(holder, "room:1", "ann", {"device": "web"})
        snapshot: dict[str, Any] = await call(COLLECTOR, TakeSnapshot())
        job = _find(snapshot["tree"], "workers", "jobs", "job.1")
        assert (job["pid"], job["name"], job["type"]) == (str(whereis("job.1")), "job.1", "worker")
        assert _find(snapshot["tree"], "workers", "jobs")["type"] == "supervisor"
        assert _find(snapshot["tree"], "(endpoint, endpoint)", "dashboard")["name"] == COLLECTOR
        assert snapshot["totals"]["processes"] == len(processes())
        rows = {row["pid"]: row for row in snapshot["processes"]}
        assert rows[str(whereis("job.1"))]["name"] == "job.1"
        assert rows[str(self_pid())]["status"] == "waiting"  # for the collector's reply
        return snapshot

    snapshot = run(main)
    assert snapshot["node"] == node.name
    assert snapshot["nodes"] == [{"name": node.name, "state": "up", "self": True}]
    assert {"topic": "room:1", "subscribers": 1, "presences": 1, "metas": 1} in snapshot["topics"]
    assert snapshot["watchdog"] == {"threshold_ms": None, "reported": 0, "reports": []}
    assert snapshot["drops"]["slow_consumer_disconnects"] == 0
    assert orjson.loads(orjson.dumps(snapshot)) == snapshot  # JSON-safe all through


def test_a_child_that_says_it_is_a_supervisor_but_is_not_is_shown_unresponsive(run: Runner) -> None:
    # A GenServer started with type="supervisor" answers which_children with whatever
    # its handle_call returns ("ok"): the tree walk must not crash on it (a collector
    # crashing at every sample would take the endpoint's tree down with it).
    async def main() -> None:
        await _start()
        impostor = dataclasses.replace(Job.child_spec(id="impostor"), type="supervisor")
        await start_child(await _child(self_pid().local.node.root, "workers"), impostor)
        collector = whereis(COLLECTOR)
        snapshot = await call(COLLECTOR, TakeSnapshot())
        entry = _find(snapshot["tree"], "workers", "impostor")
        assert entry["unresponsive"] is True
        assert entry["children"] == []
        assert whereis(COLLECTOR) == collector

    run(main)


def test_info_and_kill_then_the_supervisor_restarts(run: Runner) -> None:
    async def main() -> None:
        await _start()
        old = whereis("job.1")
        assert old is not None
        result = await call(COLLECTOR, ProcessAction("info", str(old)))
        assert (result.ok, result.value["name"], result.value["entry"]) == (True, "job.1", f"{__name__}.Job")
        watch = monitor(old)
        assert await call(COLLECTOR, ProcessAction("kill", str(old))) == ActionResult(True, {"killed": str(old)})
        down = await receive(lambda m: getattr(m, "ref", None) == watch, timeout=5 * UNIT)
        assert down.reason == "killed"
        new = await _restarted("job.1", old)
        snapshot = await call(COLLECTOR, TakeSnapshot())
        assert _find(snapshot["tree"], "workers", "jobs", "job.1")["pid"] == str(new)

    run(main)


def test_bad_requests_get_errors_and_the_collector_goes_on(run: Runner) -> None:
    async def main() -> None:
        await _start()
        collector = whereis(COLLECTOR)
        for request in [
            ProcessAction("info", "<0.999999.0>"),
            ProcessAction("kill", "<0.999999.0>"),
            ProcessAction("kill", "bogus"),
            ProcessAction("info", 42),  # type: ignore[arg-type] # what a careless caller sends
            ProcessAction("kill", "<other@host.3.0>"),
            ProcessAction("info", "<0.1.0>" * 20),
            ProcessAction("explode", "<0.1.0>"),
            ("info", "<0.1.0>"),
            "not even a request",
        ]:
            result = await call(COLLECTOR, request)
            assert type(result) is ActionResult, request
            assert not result.ok, request
            assert isinstance(result.value, str), request
        send(COLLECTOR, "a stray message")
        assert whereis(COLLECTOR) == collector
        assert (await call(COLLECTOR, TakeSnapshot()))["node"]

    run(main)


def test_a_watcher_gets_snapshots_with_rates_until_it_unwatches(run: Runner, node: Node) -> None:
    async def main() -> None:
        app = await _start(interval=0.02)
        send(COLLECTOR, Watch(self_pid()))
        watching = await receive(lambda m: isinstance(m, Watching), timeout=5 * UNIT)
        assert watching == Watching(whereis(COLLECTOR), node.name)  # type: ignore[arg-type]
        first = await receive(lambda m: isinstance(m, Snapshot), timeout=5 * UNIT)  # at once
        assert first.node == node.name
        app.pubsub.subscribe(self_pid(), "room:1")
        for n in range(10):
            app.broadcast("room:1", "tick", {"n": n})
        second = await receive(lambda m: isinstance(m, Snapshot), timeout=5 * UNIT)  # an interval later
        assert second.data["counters"]["pubsub"]["broadcasts"] - first.data["counters"]["pubsub"]["broadcasts"] == 10
        assert second.data["rates"]["pubsub"]["broadcasts"] > 0
        assert second.data["rates"]["pubsub"]["deliveries"] > 0  # to this process
        send(COLLECTOR, Unwatch(self_pid()))
        await call(COLLECTOR, TakeSnapshot())  # the Unwatch is handled by now
        # Drain what was already sent, then nothing more comes.
        while await receive(lambda m: isinstance(m, Snapshot), timeout=0, default=None) is not None:
            pass
        assert await receive(lambda m: isinstance(m, Snapshot), timeout=0.2 * UNIT, default=None) is None

    run(main)


def test_the_channel_pushes_snapshots_and_answers_info_and_kill(run: Runner, node: Node) -> None:
    async def main() -> None:
        app = await _start(interval=0.05)
        client = await connect(app, dashboard_socket(app))
        topic = f"dashboard:{node.name}"
        assert await client.join(topic) == ("ok", {"node": node.name, "local": node.name})
        pushed = await client.assert_push(topic, "snapshot", timeout=5 * UNIT)
        assert pushed.payload["node"] == node.name
        old = whereis("job.1")
        reply = await client.assert_reply(client.push(topic, "info", {"pid": str(old)}), "ok", timeout=5 * UNIT)
        assert reply.payload["name"] == "job.1"
        for bad in [{"pid": "<0.1.0"}, {"pid": 7}, {}, None, ["<0.1.0>"], {"pid": "<0.999999.0>"}]:
            reply = await client.assert_reply(client.push(topic, "kill", bad), "error", timeout=5 * UNIT)
            assert isinstance(reply.payload["reason"], str)
        await client.assert_reply(client.push(topic, "rm -rf", {}), "error", timeout=5 * UNIT)
        await client.assert_reply(client.push(topic, "kill", {"pid": str(old)}), "ok", timeout=5 * UNIT)
        new = await _restarted("job.1", old)
        deadline = time.monotonic() + 5 * UNIT
        while True:  # a later snapshot shows the new pid in the same place
            pushed = await client.assert_push(topic, "snapshot", timeout=5 * UNIT)
            if _find(pushed.payload["tree"], "workers", "jobs", "job.1")["pid"] == str(new):
                break
            assert time.monotonic() < deadline
        assert (await client.join("dashboard:nowhere@nohost"))[0] == "error"

    run(main)


def test_broadcasts_on_a_dashboard_topic_never_reach_the_page(run: Runner, node: Node) -> None:
    # An app whose own channel has a catch-all route could let its clients broadcast on
    # "dashboard:<node>": the page must only get what its collector sends.
    async def main() -> None:
        app = await _start(interval=0.05)
        client = await connect(app, dashboard_socket(app))
        topic = f"dashboard:{node.name}"
        await client.join(topic)
        await client.assert_push(topic, "snapshot", timeout=5 * UNIT)
        app.broadcast(topic, "snapshot", {"node": "spoofed", "tree": {}})
        app.broadcast(topic, "phx_close", {})
        app.broadcast(topic, "nodes", {"nodes": [{"name": "spoofed", "state": "up"}]})
        for _ in range(2):
            pushed = await client.assert_push(topic, "snapshot", timeout=5 * UNIT)
            assert pushed.payload["node"] == node.name
        await client.refute_push(topic, "phx_close", timeout=0.01)
        await client.refute_push(topic, "nodes", timeout=0.01)

    run(main)


def test_the_channel_finds_its_collector_again_after_a_restart(run: Runner, node: Node) -> None:
    async def main() -> None:
        app = await _start(interval=0.05)
        client = await connect(app, dashboard_socket(app))
        topic = f"dashboard:{node.name}"
        await client.join(topic)
        await client.assert_push(topic, "snapshot", timeout=5 * UNIT)
        old = str(whereis(COLLECTOR))
        # Killing the collector from the dashboard: it answers first, then dies.
        await client.assert_reply(client.push(topic, "kill", {"pid": old}), "ok", {"killed": old}, timeout=5 * UNIT)
        down = await client.assert_push(topic, "collector_down", timeout=5 * UNIT)
        assert down.payload == {"node": node.name, "reason": "killed"}
        # The endpoint's supervisor restarts it; the channel asks again and snapshots resume.
        deadline = time.monotonic() + 10 * UNIT
        while True:
            pushed = await client.assert_push(topic, "snapshot", timeout=5 * UNIT)
            collector = _find(pushed.payload["tree"], "(endpoint, endpoint)", "dashboard")["pid"]
            if collector != old:
                break
            assert time.monotonic() < deadline
        assert collector == str(whereis(COLLECTOR))

    run(main)


def test_the_watchdog_reports_reach_the_snapshot() -> None:
    node = Node("test@127.0.0.1", watchdog_threshold=0.05)

    async def hog() -> None:
        time.sleep(0.3)  # noqa: ASYNC251 - holds the loop on purpose: the watchdog reports it

    async def main() -> dict[str, Any]:
        await _start()
        hogger = spawn(hog)
        deadline = time.monotonic() + 10 * UNIT
        while True:  # the report reaches the collector once the loop runs again
            snapshot: dict[str, Any] = await call(COLLECTOR, TakeSnapshot())
            reports: list[dict[str, Any]] = [r for r in snapshot["watchdog"]["reports"] if r["pid"] == str(hogger)]
            if reports:
                return reports[0]
            assert time.monotonic() < deadline, snapshot["watchdog"]
            await receive(timeout=0.01, default=None)

    report = node.run(main, debug=True)
    assert report["entry"].endswith("hog")
    assert report["blocked_ms"] > 50
    assert report["total_ms"] >= report["blocked_ms"]
    assert "time.sleep(0.3)" in report["stack"]
