"""Telemetry events and the Prometheus ``/metrics`` endpoint, end to end.

Each test starts an endpoint and its native listener on 127.0.0.1 (port 0) inside the
test's node, and drives it with real clients: `alight.client` over WebSocket and
long-poll, and raw WebSockets (``websockets``) for what a well-behaved client never
does. Telemetry handlers forward what they see to the test process as messages, so
every wait is a bounded ``receive``. ``/metrics`` is fetched over real HTTP and parsed
with ``prometheus_client.parser``.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families
from testkit import UNIT, Runner
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from alight.actors import Down, Node, Pid, monitor, receive, self_pid, which_children
from alight.actors import exit as exit_signal
from alight.actors.supervisor import terminate_child
from alight.channels import Channel, Endpoint, Error, NoReply, Ok, Socket
from alight.channels.testing import start_endpoint
from alight.client import JoinError
from alight.client import Socket as Client
from alight.metrics import MAX_EVENT_LABEL_LENGTH, MAX_EVENT_LABELS, EndpointMetrics
from alight.telemetry import CHANNEL_HANDLED_IN, CHANNEL_JOINED, PUBSUB_BROADCAST, SOCKET_CONNECTED, Event
from alight.transports.listener import HttpListener, listener_port

WAIT = 5 * UNIT


class RoomChannel(Channel):
    async def join(self, topic: str, payload: Any) -> Ok | Error:
        if topic == "room:forbidden":
            return Error({"reason": "forbidden"})
        return Ok({"joined": topic})

    async def handle_in(self, event: str, payload: Any) -> Ok | NoReply:
        if event == "shout":
            self.broadcast("shout", payload)
            return NoReply()
        return Ok(payload)


class RoomSocket(Socket):
    channels = {"room:*": RoomChannel}

    async def connect(self, params: dict[str, Any], connect_info: Any) -> bool:
        return "user_id" in params


@dataclass(frozen=True)
class Seen:
    """What a telemetry handler saw, sent to the test process."""

    event: Event
    measurements: dict[str, Any]
    metadata: dict[str, Any]


def forward_to(node: Node, pid: Pid, handler_id: str, events: list[Event]) -> None:
    def handler(event: Event, measurements: Mapping[str, Any], metadata: Mapping[str, Any], config: Any) -> None:
        node.send(pid, Seen(event, dict(measurements), dict(metadata)))

    node.telemetry.attach_many(handler_id, events, handler)


async def seen(event: Event) -> Seen:
    message: Seen = await receive(lambda m: type(m) is Seen and m.event == event, WAIT)
    return message


async def serve(node: Node, **options: Any) -> tuple[Endpoint, int]:
    """A running endpoint with a listener on a free port; its port."""
    metered = options.pop("metrics", False)
    app = Endpoint(check_origin=False, name="telemetry_test", **options)
    if metered:
        EndpointMetrics(app)
    app.socket("/socket", RoomSocket, websocket=True, longpoll=True)
    await start_endpoint(app)
    listener = await HttpListener.start_link(app, port=0, stats=app.transport_stats)
    return app, await listener_port(listener)


def client(port: int, **options: Any) -> Client:
    options.setdefault("params", {"user_id": "ann"})
    options.setdefault("reconnect_steps", (0.05,))
    return Client(f"ws://127.0.0.1:{port}/socket", **options)


def http_get(port: int, path: str, accept: str | None = None) -> tuple[int, str, str]:
    """``GET path`` in a thread (the node's loop keeps serving): status, content type, body."""

    def get() -> tuple[int, str, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"accept": accept} if accept else {})
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as response:
                return response.status, response.headers["content-type"], response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers["content-type"] or "", error.read().decode()

    return get()


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``GET /metrics``, parsed: (sample name, sorted labels without ``node``) -> value."""
    status, content_type, body = await asyncio.to_thread(http_get, port, "/metrics")
    assert status == 200, body
    assert content_type.startswith("text/plain; version=0.0.4")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            assert sample.labels.get("node") == "test@127.0.0.1", sample
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "node"))
            samples[(sample.name, labels)] = sample.value
    return samples


def test_connect_join_handle_in_and_broadcast_events_carry_the_documented_measurements(run: Runner, node: Node) -> None:
    async def main() -> None:
        app, port = await serve(node)
        forward_to(node, self_pid(), "test", [SOCKET_CONNECTED, CHANNEL_JOINED, CHANNEL_HANDLED_IN, PUBSUB_BROADCAST])

        async with client(port) as socket:
            connected = await seen(SOCKET_CONNECTED)
            assert connected.measurements["duration"] >= 0
            meta = connected.metadata
            assert meta["endpoint"] is app
            assert meta["user_socket"] is RoomSocket
            assert (meta["transport"], meta["vsn"], meta["result"]) == ("websocket", "2.0.0", "ok")
            assert meta["params"]["user_id"] == "ann"
            assert meta["connect_info"].transport == "websocket"

            room = socket.channel("room:1", {"hello": 1})
            await room.join(WAIT)
            joined = await seen(CHANNEL_JOINED)
            assert joined.measurements["duration"] >= 0
            assert joined.metadata["endpoint"] is app
            assert joined.metadata["channel"] is RoomChannel
            assert (joined.metadata["topic"], joined.metadata["result"]) == ("room:1", "ok")
            assert joined.metadata["params"] == {"hello": 1}
            assert joined.metadata["transport"] == "websocket"

            with pytest.raises(JoinError):
                await socket.channel("room:forbidden").join(WAIT)
            refused = await seen(CHANNEL_JOINED)
            assert (refused.metadata["topic"], refused.metadata["result"]) == ("room:forbidden", "error")

            reply = await room.push("echo", {"n": 1}, WAIT)
            assert reply.status == "ok"
            handled = await seen(CHANNEL_HANDLED_IN)
            assert handled.measurements["duration"] >= 0
            assert handled.metadata["endpoint"] is app
            assert handled.metadata["channel"] is RoomChannel
            assert (handled.metadata["topic"], handled.metadata["event"]) == ("room:1", "echo")
            assert handled.metadata["params"] == {"n": 1}

            # "shout" has no reply (NoReply): the push is left waiting, then cancelled.
            shouted = asyncio.ensure_future(room.push("shout", {"text": "hi"}, WAIT))
            broadcast = await seen(PUBSUB_BROADCAST)
            shouted.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await shouted
            assert broadcast.measurements == {"local_deliveries": 1}  # ann's own channel
            assert broadcast.metadata["pubsub"] is app.pubsub
            assert (broadcast.metadata["topic"], broadcast.metadata["event"]) == ("room:1", "shout")

        # Refused connects are reported too, and long-poll says so.
        with pytest.raises(InvalidStatus):
            async with ws_connect(f"ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0", open_timeout=WAIT):
                pass
        refused_connect = await seen(SOCKET_CONNECTED)
        assert refused_connect.metadata["result"] == "error"
        assert refused_connect.metadata["params"] == {"vsn": "2.0.0"}
        async with client(port, transport="longpoll", vsn="1.0.0") as polling:
            await polling.wait_connected(WAIT)
            over_longpoll = await seen(SOCKET_CONNECTED)
            assert (over_longpoll.metadata["transport"], over_longpoll.metadata["vsn"]) == ("longpoll", "1.0.0")
            assert over_longpoll.metadata["result"] == "ok"

    run(main)


def test_a_failing_handler_is_detached_and_the_channel_carries_on(run: Runner, node: Node) -> None:
    async def main() -> None:
        _app, port = await serve(node)

        def broken(event: Event, measurements: Mapping[str, Any], metadata: Mapping[str, Any], config: Any) -> None:
            raise RuntimeError("a bug in a metrics handler")

        node.telemetry.attach("broken", CHANNEL_HANDLED_IN, broken)
        forward_to(node, self_pid(), "test", [CHANNEL_HANDLED_IN])
        async with client(port) as socket:
            room = socket.channel("room:1")
            await room.join(WAIT)
            for n in range(3):
                assert (await room.push("echo", {"n": n}, WAIT)).response == {"n": n}
                await seen(CHANNEL_HANDLED_IN)
        assert [info.id for info in node.telemetry.list_handlers(CHANNEL_HANDLED_IN)] == ["test"]

    run(main)


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_endpoint_counts_what_clients_do(run: Runner, node: Node) -> None:
    async def main() -> None:
        app, port = await serve(node, metrics=True)
        metrics = app.extension(EndpointMetrics)
        assert metrics is not None
        before = await scrape(port)
        assert value(before, "alight_processes") > 0
        assert value(before, "alight_connections") == 0
        assert value(before, "alight_socket_connects_total", transport="websocket", vsn="2.0.0", result="ok") == 0

        async with client(port) as socket:
            room = socket.channel("room:lobby")
            await room.join(WAIT)
            await room.push("echo", {"n": 1}, WAIT)
            await room.push("echo", {"n": 2}, WAIT)
            with pytest.raises(JoinError):
                await socket.channel("room:forbidden").join(WAIT)
            during = await scrape(port)
            assert value(during, "alight_connections") == 1
            assert value(during, "alight_channels") == 1
            assert value(during, "alight_http_websockets") == 1

        # A frame that does not decode closes its connection and is counted.
        async with ws_connect(f"ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0&user_id=bob") as raw:
            await raw.send("this is not a message")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(raw.recv(), WAIT)
        app.broadcast("room:nobody", "news", {})

        after = await scrape(port)
        ws_ok = {"transport": "websocket", "vsn": "2.0.0", "result": "ok"}
        assert value(after, "alight_socket_connects_total", **ws_ok) == 2
        assert value(after, "alight_socket_connect_duration_seconds_count", transport="websocket") == 2
        assert value(after, "alight_channel_joins_total", channel="RoomChannel", result="ok") == 1
        assert value(after, "alight_channel_joins_total", channel="RoomChannel", result="error") == 1
        assert value(after, "alight_channel_join_duration_seconds_count", channel="RoomChannel") == 2
        echo = {"channel": "RoomChannel", "event": "echo"}
        assert value(after, "alight_channel_handle_in_duration_seconds_count", **echo) == 2
        assert value(after, "alight_channel_handle_in_duration_seconds_bucket", le="+Inf", **echo) == 2
        assert value(after, "alight_pubsub_dispatches_total") >= 1
        assert value(after, "alight_endpoint_invalid_frames_total") == 1
        assert value(after, "alight_endpoint_joins_total") == 1
        assert value(after, "alight_http_requests_total") >= 2  # the scrapes themselves
        for name in ("alight_mailbox_messages", "alight_process_crashes_total", "alight_pubsub_fastlane_writes_total"):
            assert (name, ()) in after, name
        assert not any(name.startswith("alight_cluster") for name, _ in after)  # a node alone

        # OpenMetrics when asked for; the library's global registry is left alone.
        status, content_type, body = await asyncio.to_thread(
            http_get, port, "/metrics", "application/openmetrics-text; version=1.0.0"
        )
        assert status == 200
        assert content_type.startswith("application/openmetrics-text")
        assert body.rstrip().endswith("# EOF")
        assert "alight_" not in prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()

        # An Accept header the library cannot parse gets the default format, not a 500.
        for accept in ("application/openmetrics-text; version=abc", "application/openmetrics-text; version=1.x"):
            status, content_type, body = await asyncio.to_thread(http_get, port, "/metrics", accept)
            assert status == 200, body
            assert content_type.startswith("text/plain; version=0.0.4")
            assert "alight_processes" in body

    run(main)


def test_event_names_from_clients_are_bounded_labels(run: Runner, node: Node) -> None:
    async def main() -> None:
        _app, port = await serve(node, metrics=True)
        async with client(port) as socket:
            room = socket.channel("room:1")
            await room.join(WAIT)
            # A long name neither becomes a label nor takes one of the slots.
            await room.push("x" * (MAX_EVENT_LABEL_LENGTH + 1), {}, WAIT)
            await room.push("y" * MAX_EVENT_LABEL_LENGTH, {}, WAIT)
            for n in range(MAX_EVENT_LABELS + 5 - 1):
                await room.push(f"event-{n}", {}, WAIT)
        samples = await scrape(port)
        labelled = {
            dict(labels)["event"]: count
            for (name, labels), count in samples.items()
            if name == "alight_channel_handle_in_duration_seconds_count"
        }
        assert len(labelled) == MAX_EVENT_LABELS + 1
        assert labelled["y" * MAX_EVENT_LABEL_LENGTH] == 1
        assert labelled["event-0"] == 1
        assert labelled["other"] == 1 + 5
        assert f"event-{MAX_EVENT_LABELS - 1}" not in labelled

    run(main)


def test_metrics_are_off_by_default_and_their_handlers_go_with_the_endpoint(run: Runner, node: Node) -> None:
    async def main() -> None:
        app, port = await serve(node)
        assert app.extension(EndpointMetrics) is None
        status, _, _ = await asyncio.to_thread(http_get, port, "/metrics")
        assert status == 404
        assert node.telemetry.list_handlers() == []

        metered = Endpoint(check_origin=False, name="metered")
        EndpointMetrics(metered)
        pid = await start_endpoint(metered)
        metrics = metered.extension(EndpointMetrics)
        assert metrics is not None
        [info] = node.telemetry.list_handlers(SOCKET_CONNECTED)
        assert info.id == metrics.handler_id
        await terminate_child(node.root, ("endpoint", "metered"))
        assert node.lookup(pid) is None
        assert node.telemetry.list_handlers() == []

    run(main)


def test_presences_are_a_gauge_read_at_scrape_time(run: Runner, node: Node) -> None:
    async def main() -> None:
        app, port = await serve(node, metrics=True, presence=True)
        assert app.presence is not None
        assert (await scrape(port))[("alight_presences", ())] == 0
        tracker = app.presence.tracker
        await tracker.track(self_pid(), "room:a", "ann", {"device": "phone"})
        await tracker.track(self_pid(), "room:a", "bob", {})
        await tracker.track(self_pid(), "room:b", "ann", {"device": "laptop"})
        assert value(await scrape(port), "alight_presences") == 3
        await tracker.untrack(self_pid(), "room:a", "bob")
        assert value(await scrape(port), "alight_presences") == 2

    run(main)


async def kill(pid: Pid) -> None:
    """``exit(pid, "kill")``, and wait (bounded) for its end."""
    ref = monitor(pid)
    exit_signal(pid, "kill")
    await receive(lambda m: isinstance(m, Down) and m.ref == ref, WAIT)


def test_a_killed_metrics_process_is_restarted_with_its_handlers(run: Runner, node: Node) -> None:
    async def main() -> None:
        app, port = await serve(node, metrics=True)
        metrics = app.extension(EndpointMetrics)
        assert metrics is not None
        handler_id = metrics.handler_id
        [tree] = [c.pid for c in await which_children(node.root) if c.id == ("endpoint", app.name)]
        assert tree is not None
        for _ in range(3):
            [old] = [c.pid for c in await which_children(tree) if c.id == "metrics"]
            assert old is not None
            await kill(old)
            # Restarted (a new pid), and the new process holds the handlers under the same id.
            deadline = asyncio.get_running_loop().time() + WAIT
            while True:
                [new] = [c.pid for c in await which_children(tree) if c.id == "metrics"]
                attached = [info.id for info in node.telemetry.list_handlers(SOCKET_CONNECTED)]
                if new is not None and new != old and attached == [handler_id]:
                    break
                assert asyncio.get_running_loop().time() < deadline, f"not restarted: {new} {attached}"
                await receive(timeout=0.01, default=None)
        async with client(port) as socket:
            await socket.channel("room:1").join(WAIT)
        samples = await scrape(port)
        assert samples[("alight_channel_joins_total", (("channel", "RoomChannel"), ("result", "ok")))] == 1

    run(main)


def test_a_scrape_while_the_channel_supervisor_restarts_answers_with_the_last_count(run: Runner, node: Node) -> None:
    async def main() -> None:
        app, port = await serve(node, metrics=True)
        metrics = app.extension(EndpointMetrics)
        assert metrics is not None
        async with client(port) as socket:
            await socket.channel("room:lobby").join(WAIT)
            assert value(await scrape(port), "alight_channels") == 1
            # Killed, the supervisor is gone at once and restarted a loop turn later:
            # a refresh in between gets no answer and keeps the count it had.
            exit_signal(app.channel_supervisor, "kill")
            await metrics.refresh()
            rendered = prometheus_client.generate_latest(metrics.registry).decode()
            channels = [
                sample.value
                for family in text_string_to_metric_families(rendered)
                for sample in family.samples
                if sample.name == "alight_channels"
            ]
            assert channels == [1]
            after = await scrape(port)  # the restarted supervisor: the channel went with the old one
            assert value(after, "alight_channels") == 0

    run(main)
