"""The channel layer end to end through `alight.channels.testing` (no network).

Every event of the reference app (issue 3), and the lifecycle rules of docs/protocol.md
§3 and §4: joins, leaves, duplicate joins, crashes, stops, the channel limit, the
socket id ``disconnect``, intercepts and replies from other processes.

The test process plays the client: every frame the server writes arrives in its
mailbox as a `Message` or `Reply`, in the order it was written, so `next_frame`
checks wire order. A second client whose frames must not mix with the first runs
in its own process (`InProcess`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import pytest
from testkit import UNIT, Runner

from alight.actors import Down, Pid, make_ref, monitor, receive, self_pid, send, spawn
from alight.channels import Channel, Endpoint, Error, NoReply, Ok, Socket, SocketRef, Stop, reply
from alight.channels.message import Message, Reply
from alight.channels.testing import TestClient, connect, start_endpoint
from alight.examples.reference import RoomChannel, UserSocket
from alight.transports.base import CLOSE_GOING_AWAY, ConnectInfo

WAIT = 1.0 * UNIT
SHORT = 0.1 * UNIT
"""How long an absence is watched for (absence cannot be awaited)."""


# -- helpers ---------------------------------------------------------------------------------


async def next_frame(timeout: float = WAIT) -> Message | Reply:
    """The oldest frame the server wrote to this process's client(s)."""
    frame: Message | Reply = await receive(lambda m: type(m) is Message or type(m) is Reply, timeout)
    return frame


async def drain() -> list[Message | Reply]:
    """Every frame queued now, oldest first."""
    frames = []
    while (frame := await receive(lambda m: type(m) is Message or type(m) is Reply, 0, None)) is not None:
        frames.append(frame)
    return frames


async def no_frame(timeout: float = SHORT) -> None:
    frame = await receive(lambda m: type(m) is Message or type(m) is Reply, timeout, None)
    assert frame is None, f"unexpected frame {frame!r}"


async def started(
    socket: type[Socket] = UserSocket, params: dict[str, Any] | None = None
) -> tuple[Endpoint, TestClient]:
    app = Endpoint(check_origin=False)
    await start_endpoint(app)
    return app, await connect(app, socket, params)


class InProcess:
    """``fn(*args)`` running in a new process: a client with its own mailbox."""

    def __init__(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        parent = self_pid()
        self.tag = make_ref()
        tag = self.tag

        async def body() -> None:
            try:
                value = await fn(*args)
            except BaseException as error:
                send(parent, (tag, False, error))
                raise
            send(parent, (tag, True, value))

        self.pid = spawn(body)

    async def result(self) -> Any:
        """Its value, or re-raise what it raised."""
        tag = self.tag
        _, ok, value = await receive(lambda m: type(m) is tuple and len(m) == 3 and m[0] == tag, 3 * WAIT)
        if not ok:
            raise value
        return value


# -- a channel that reports what happens to it --------------------------------------------


class ProbeChannel(Channel):
    """Tells the test process (``assigns["notify"]``) about its join and terminate."""

    intercepts = ("filtered",)

    def notify(self, message: Any) -> None:
        send(self.assigns["notify"], message)

    async def join(self, topic: str, payload: Any) -> Ok | Error:
        mode = payload.get("mode")
        if mode == "raise":
            raise RuntimeError("join blew up")
        if mode == "push":
            self.push("early", {})
        if mode == "broadcast":
            self.broadcast("early", {})
        if mode == "reply_ref":
            self.socket_ref()
        if mode == "bad":
            return {"ok": True}  # type: ignore[return-value]
        self.notify(("joined", topic, self.join_ref, self_pid()))
        return Ok()

    async def handle_in(self, event: str, payload: Any) -> Any:
        if event == "ping":
            return Ok(payload)
        if event == "bad_return":
            return {"status": "ok"}
        if event == "defer":
            self.notify(("deferred", self.socket_ref()))
            return NoReply()
        if event == "stop_bad_reply":
            return Stop("normal", {"status": "ok"})  # type: ignore[arg-type]
        if event == "stop_crash":
            return Stop("boom")
        if event == "stop_shutdown":
            return Stop(("shutdown", "bye"), Error({"bye": True}))
        return Error({"unknown": event})

    async def handle_out(self, event: str, payload: Any) -> NoReply | Stop | None:
        if self.assigns.get("filter"):
            return NoReply()
        self.push(event, {**payload, "for": self.assigns["user_id"]})
        return None

    async def handle_info(self, message: Any) -> NoReply | Stop | None:
        if message == "stop_with_reply":
            return Stop("normal", Ok({}))  # handle_info has nothing to reply to
        self.notify(("info", self.topic, message))
        return None

    async def terminate(self, reason: Any) -> None:
        self.notify(("terminate", self.topic, self.join_ref, reason))


class ProbeSocket(Socket):
    channels: ClassVar[dict[str, type[Channel]]] = {"probe:*": ProbeChannel, "room:*": RoomChannel}

    async def connect(self, params: dict[str, Any], connect_info: ConnectInfo) -> bool:
        if params.get("raise"):
            raise RuntimeError("connect blew up")
        if params.get("answer") is not None:
            return params["answer"]  # type: ignore[no-any-return]
        self.assigns["notify"] = params["notify"]
        self.assigns["user_id"] = params.get("user_id", "anon")
        self.assigns["filter"] = params.get("filter", False)
        return True

    def id(self) -> str | None:
        user_id = self.assigns["user_id"]
        return user_id if user_id == 42 else f"user_socket:{user_id}"


async def probe(params: dict[str, Any] | None = None) -> tuple[Endpoint, TestClient]:
    return await started(ProbeSocket, {"notify": self_pid(), **(params or {})})


async def joined_probe(client: TestClient, topic: str) -> Pid:
    assert await client.join(topic) == ("ok", {})
    _, _, _, pid = await receive(lambda m: type(m) is tuple and m[:2] == ("joined", topic), WAIT)
    assert isinstance(pid, Pid)
    return pid


async def terminated(topic: str, timeout: float = WAIT) -> tuple[Any, Any]:
    """The (join_ref, reason) of the next ``terminate`` of a channel on ``topic``."""
    _, _, join_ref, reason = await receive(lambda m: type(m) is tuple and m[:2] == ("terminate", topic), timeout)
    return join_ref, reason


# -- the reference app, event by event ------------------------------------------------------


def test_join_and_ping(run: Runner) -> None:
    async def main() -> None:
        _, client = await started()
        assert await client.join("room:lobby", {"device": "phone"}) == ("ok", {"joined": "lobby"})
        ref = client.push("room:lobby", "ping", {"n": 1})
        got = await client.assert_reply(ref, "ok", {"n": 1})
        assert (got.topic, got.join_ref) == ("room:lobby", client.join_refs["room:lobby"])

    run(main)


def test_join_refused(run: Runner) -> None:
    async def main() -> None:
        _, client = await started()
        assert await client.join("room:forbidden") == ("error", {"reason": "unauthorized"})
        # No channel was registered: a push is an unmatched topic.
        ref = client.push("room:forbidden", "ping", {})
        got = await client.assert_reply(ref, "error", {"reason": "unmatched topic"})
        assert got.join_ref is None

    run(main)


def test_shout_is_broadcast_to_everyone_including_the_sender(run: Runner) -> None:
    async def main() -> None:
        app, client = await started()
        await client.join("room:1")

        async def listener() -> Message:
            other = await connect(app, UserSocket, {"user_id": "other"})
            await other.join("room:1")
            send(parent, "listening")
            return await other.assert_push("room:1", "shout")

        parent = self_pid()
        heard = InProcess(listener)
        await receive(lambda m: m == "listening", WAIT)
        ref = client.push("room:1", "shout", {"hi": 1})
        pushed = await client.assert_push("room:1", "shout", {"hi": 1})
        assert (pushed.ref, pushed.join_ref) == (None, None)  # a fastlane broadcast
        await client.assert_broadcast("room:1", "shout", {"hi": 1})
        assert (await heard.result()).payload == {"hi": 1}
        # shout has no reply.
        assert await receive(lambda m: type(m) is Reply and m.ref == ref, SHORT, None) is None

    run(main)


def test_error_reply(run: Runner) -> None:
    async def main() -> None:
        _, client = await started()
        await client.join("room:1")
        await client.assert_reply(client.push("room:1", "error_reply"), "error", {"reason": "nope"})

    run(main)


def test_push_me_pushes_before_the_reply(run: Runner) -> None:
    async def main() -> None:
        _, client = await started()
        await client.join("room:1")
        ref = client.push("room:1", "push_me", {"x": 2})
        first = await next_frame()
        assert type(first) is Message
        assert (first.event, first.payload, first.ref) == ("pushed", {"x": 2}, None)
        assert first.join_ref == client.join_refs["room:1"]
        second = await next_frame()
        assert type(second) is Reply
        assert (second.ref, second.status, second.payload) == (ref, "ok", {})

    run(main)


def test_async_reply_comes_later_and_the_channel_stays_responsive(run: Runner) -> None:
    async def main() -> None:
        _, client = await started()
        await client.join("room:1")
        later = client.push("room:1", "async", {"a": 1})
        ping = client.push("room:1", "ping", {"p": 1})
        first = await next_frame()
        assert type(first) is Reply
        assert first.ref == ping
        second = await next_frame(2 * WAIT)
        assert type(second) is Reply
        assert (second.ref, second.status, second.payload) == (later, "ok", {"a": 1})
        assert second.join_ref == client.join_refs["room:1"]

    run(main)


def test_crash_sends_phx_error_then_rejoin_works(run: Runner) -> None:
    async def main() -> None:
        _, client = await started()
        await client.join("room:1")
        old_join_ref = client.join_refs["room:1"]
        client.push("room:1", "crash")
        error = await client.assert_push("room:1", "phx_error", {"reason": "channel_crash"})
        assert (error.ref, error.join_ref) == (old_join_ref, old_join_ref)
        await no_frame()  # no reply to the crashing push, nothing else
        assert await client.join("room:1") == ("ok", {"joined": "1"})
        await client.assert_reply(client.push("room:1", "ping", {"again": 1}), "ok", {"again": 1})

    run(main)


def test_stop_replies_then_closes(run: Runner) -> None:
    async def main() -> None:
        _, client = await started()
        await client.join("room:1")
        join_ref = client.join_refs["room:1"]
        ref = client.push("room:1", "stop")
        first = await next_frame()
        assert type(first) is Reply
        assert (first.ref, first.status, first.payload) == (ref, "ok", {})
        close = await next_frame()
        assert type(close) is Message
        assert (close.event, close.payload, close.ref, close.join_ref) == ("phx_close", {}, join_ref, join_ref)
        await no_frame()
        got = await client.assert_reply(client.push("room:1", "ping"), "error", {"reason": "unmatched topic"})
        assert got.join_ref is None

    run(main)


def test_binary_payload_round_trip(run: Runner) -> None:
    async def main() -> None:
        _, client = await started()
        await client.join("room:1")
        data = bytes(range(256))
        got = await client.assert_reply(client.push("room:1", "binary", data), "ok")
        assert got.payload == data

    run(main)


def test_user_comes_from_connect_assigns(run: Runner) -> None:
    async def main() -> None:
        app = Endpoint(check_origin=False)
        await start_endpoint(app)
        client = await connect(app, UserSocket, {"user_id": "u7"})
        await client.join("room:1")
        await client.assert_reply(client.push("room:1", "user"), "ok", {"user_id": "u7"})
        anon = await connect(app, UserSocket, {})
        await anon.join("room:2")
        await anon.assert_reply(anon.push("room:2", "user"), "ok", {"user_id": "anon"})

    run(main)


def test_socket_connect_refusal(run: Runner) -> None:
    async def main() -> None:
        app = Endpoint(check_origin=False)
        await start_endpoint(app)
        with pytest.raises(AssertionError, match="refused"):
            await connect(app, UserSocket, {"token": "bad"})
        assert app.stats.connections == 0
        await connect(app, UserSocket, {"token": "good"})
        assert app.stats.connections == 1

    run(main)


def test_connect_returning_a_non_bool_is_refused(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        app = Endpoint(check_origin=False)
        await start_endpoint(app)
        for answer in ("yes", 1, {"ok": True}):
            with pytest.raises(AssertionError, match="refused"):
                await connect(app, ProbeSocket, {"answer": answer})
        assert app.stats.connections == 0

    with caplog.at_level(logging.ERROR, "alight.channels.socket"):
        run(main)
    assert "expected True or False" in caplog.text


# -- the socket's own answers (docs/protocol.md §3.1) --------------------------------------------


def test_heartbeat_is_answered_by_the_socket(run: Runner) -> None:
    async def main() -> None:
        _, client = await started()
        client.send(Message("phoenix", "heartbeat", {}, "h1", None))
        got = await client.assert_reply("h1", "ok", {})
        assert (got.topic, got.join_ref) == ("phoenix", None)
        client.send(Message("phoenix", "ping", {}, "h2", None))
        await client.assert_reply("h2", "error", {"reason": "unmatched topic"})

    run(main)


def test_unmatched_topic_join_reply_has_a_null_join_ref(run: Runner) -> None:
    async def main() -> None:
        _, client = await started()
        assert await client.join("nowhere:1") == ("error", {"reason": "unmatched topic"})
        client.send(Message("nowhere:2", "phx_join", {}, "j2", "j2"))
        reply_ = await client.assert_reply("j2", "error", {"reason": "unmatched topic"})
        assert reply_.join_ref is None

    run(main)


def test_leave_of_a_topic_not_joined_is_ok(run: Runner) -> None:
    async def main() -> None:
        _, client = await started()
        client.send(Message("room:9", "phx_leave", {}, "l1", "jr9"))
        got = await client.assert_reply("l1", "ok", {})
        assert got.join_ref == "jr9"  # echoed
        await no_frame()

    run(main)


def test_stale_join_ref_is_dropped_and_null_is_forwarded(run: Runner) -> None:
    async def main() -> None:
        _, client = await started()
        await client.join("room:1")
        current = client.join_refs["room:1"]
        client.send(Message("room:1", "ping", {}, "stale", "not-" + current))
        client.send(Message("room:1", "ping", {"n": 1}, "null", None))
        got = await next_frame()
        assert type(got) is Reply
        assert got.ref == "null"
        assert got.payload == {"n": 1}
        assert got.join_ref == current  # stamped with the channel's join_ref
        # A stale leave is ignored too: the channel is still there.
        client.send(Message("room:1", "phx_leave", {}, "stale-leave", "old"))
        await no_frame()
        await client.assert_reply(client.push("room:1", "ping", {"n": 2}), "ok", {"n": 2})

    run(main)


def test_channel_joined_without_a_join_ref(run: Runner) -> None:
    async def main() -> None:
        _, client = await started()
        client.send(Message("room:1", "phx_join", {}, "j", None))  # a V1 client
        got = await client.assert_reply("j", "ok", {"joined": "1"})
        assert got.join_ref is None
        # 1.8.12: a message that carries a join_ref is stale for this channel.
        client.send(Message("room:1", "ping", {}, "with", "j"))
        client.send(Message("room:1", "ping", {"ok": 1}, "without", None))
        first = await next_frame()
        assert type(first) is Reply
        assert first.ref == "without"

    run(main)


def test_leave_replies_then_closes_and_terminates(run: Runner) -> None:
    async def main() -> None:
        _, client = await probe()
        await joined_probe(client, "probe:1")
        join_ref = client.join_refs["probe:1"]
        leave = await client.leave("probe:1")
        assert (leave.status, leave.payload, leave.join_ref) == ("ok", {}, join_ref)
        close = await next_frame()
        assert type(close) is Message
        assert (close.event, close.ref, close.join_ref) == ("phx_close", join_ref, join_ref)
        assert await terminated("probe:1") == (join_ref, ("shutdown", "left"))
        await no_frame()
        # Rejoining after a leave is a fresh join.
        await joined_probe(client, "probe:1")

    run(main)


def test_leave_with_a_null_join_ref_is_accepted(run: Runner) -> None:
    async def main() -> None:
        _, client = await probe()
        await joined_probe(client, "probe:1")
        join_ref = client.join_refs["probe:1"]
        client.send(Message("probe:1", "phx_leave", {}, "l", None))
        got = await client.assert_reply("l", "ok", {})
        assert got.join_ref == join_ref
        await client.assert_push("probe:1", "phx_close")
        assert await terminated("probe:1") == (join_ref, ("shutdown", "left"))

    run(main)


def test_duplicate_join_replies_then_closes_the_old_incarnation(run: Runner) -> None:
    async def main() -> None:
        _, client = await probe()
        old_pid = await joined_probe(client, "probe:1")
        old_ref = client.join_refs["probe:1"]
        watch = monitor(old_pid)
        client.send(Message("probe:1", "phx_join", {}, "new", "new"))
        first = await next_frame()
        assert type(first) is Reply
        assert (first.ref, first.join_ref, first.status) == ("new", "new", "ok")
        second = await next_frame()
        assert type(second) is Message
        assert (second.event, second.ref, second.join_ref, second.payload) == ("phx_close", old_ref, old_ref, {})
        down = await receive(lambda m: type(m) is Down and m.ref == watch, WAIT)
        assert down.reason == ("shutdown", "duplicate_join")
        await no_frame()
        # The new incarnation serves; the old join_ref is now stale.
        client.send(Message("probe:1", "ping", {}, "old", old_ref))
        client.send(Message("probe:1", "ping", {"n": 1}, "cur", "new"))
        got = await next_frame()
        assert type(got) is Reply
        assert (got.ref, got.join_ref, got.payload) == ("cur", "new", {"n": 1})

    run(main)


def test_duplicate_join_that_fails_still_closes_the_old_incarnation(run: Runner) -> None:
    async def main() -> None:
        _, client = await probe()
        await joined_probe(client, "probe:1")
        old_ref = client.join_refs["probe:1"]
        client.send(Message("probe:1", "phx_join", {"mode": "raise"}, "new", "new"))
        first = await next_frame()
        assert type(first) is Reply
        assert (first.ref, first.payload) == ("new", {"reason": "join crashed"})
        second = await next_frame()
        assert type(second) is Message
        assert (second.event, second.join_ref) == ("phx_close", old_ref)
        await no_frame()
        await client.assert_reply(client.push("probe:1", "ping"), "error", {"reason": "unmatched topic"})

    run(main)


def test_the_101st_channel_is_refused(run: Runner) -> None:
    async def main() -> None:
        app, client = await started()
        for i in range(100):
            client.send(Message(f"room:{i}", "phx_join", {}, f"j{i}", f"j{i}"))
        for i in range(100):
            await client.assert_reply(f"j{i}", "ok")
        assert app.stats.joins == 100
        client.send(Message("room:100", "phx_join", {}, "j100", "j100"))
        got = await client.assert_reply("j100", "error", {"reason": "too many channels joined"})
        assert got.join_ref == "j100"
        # A duplicate join at the limit replaces, it is not refused.
        client.send(Message("room:5", "phx_join", {}, "again", "again"))
        await client.assert_reply("again", "ok")
        # After a leave there is room again.
        client.send(Message("room:0", "phx_leave", {}, "l0", "j0"))
        await client.assert_reply("l0", "ok")
        client.send(Message("room:100", "phx_join", {}, "j101", "j101"))
        await client.assert_reply("j101", "ok", {"joined": "100"})

    run(main)


# -- channels and their socket ----------------------------------------------------------------


def test_disconnect_broadcast_closes_every_socket_of_that_user(run: Runner) -> None:
    async def main() -> None:
        app, client = await probe({"user_id": "u1"})
        await joined_probe(client, "probe:1")
        join_ref = client.join_refs["probe:1"]

        async def bystander() -> None:
            other = await connect(app, ProbeSocket, {"notify": self_pid(), "user_id": "u2"})
            await other.join("room:1")
            send(parent, "ready")
            await receive(lambda m: m == "check", 3 * WAIT)
            await other.assert_reply(other.push("room:1", "ping", {"alive": 1}), "ok", {"alive": 1})
            assert not other.conn.closed

        parent = self_pid()
        other = InProcess(bystander)
        await receive(lambda m: m == "ready", WAIT)
        app.broadcast("user_socket:u1", "disconnect", {})
        closed = await client.assert_closed()
        assert closed.code == CLOSE_GOING_AWAY
        assert await terminated("probe:1") == (join_ref, ("shutdown", "disconnected"))
        await app.pubsub.sync(WAIT)
        assert app.pubsub.subscribers("user_socket:u1") == []
        assert app.stats.connections == 1  # the bystander
        send(other.pid, "check")
        await other.result()

    run(main)


def test_closing_the_client_stops_its_channels(run: Runner) -> None:
    async def main() -> None:
        app, client = await probe()
        await joined_probe(client, "probe:1")
        await joined_probe(client, "probe:2")
        refs = {t: client.join_refs[t] for t in ("probe:1", "probe:2")}
        client.close()
        got = {await terminated("probe:1"), await terminated("probe:2")}
        assert got == {(refs["probe:1"], ("shutdown", "closed")), (refs["probe:2"], ("shutdown", "closed"))}
        await app.pubsub.sync(WAIT)
        assert app.pubsub.subscribers("probe:1") == [self_pid()]  # only the test's own subscription
        assert app.stats.connections == 0
        await no_frame()

    run(main)


def test_join_that_raises_is_join_crashed_and_the_socket_lives_on(run: Runner) -> None:
    async def main() -> None:
        _, client = await probe()
        assert await client.join("probe:bad", {"mode": "raise"}) == ("error", {"reason": "join crashed"})
        reply_ = await client.assert_reply(client.push("probe:bad", "ping"), "error")
        assert reply_.payload == {"reason": "unmatched topic"}
        await joined_probe(client, "probe:good")
        await client.assert_reply(client.push("probe:good", "ping", {"n": 1}), "ok", {"n": 1})

    run(main)


@pytest.mark.parametrize("mode", ["push", "broadcast", "reply_ref"])
def test_sending_inside_join_raises_not_joined(run: Runner, caplog: pytest.LogCaptureFixture, mode: str) -> None:
    async def main() -> None:
        _, client = await probe()
        assert await client.join("probe:1", {"mode": mode}) == ("error", {"reason": "join crashed"})
        await no_frame()  # nothing was pushed or broadcast
        await joined_probe(client, "probe:2")

    with caplog.at_level(logging.ERROR, "alight.actors.crash"):
        run(main)
    assert "NotJoined" in caplog.text


def test_join_with_a_bad_return_is_join_crashed(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        _, client = await probe()
        assert await client.join("probe:1", {"mode": "bad"}) == ("error", {"reason": "join crashed"})

    with caplog.at_level(logging.ERROR, "alight.actors.crash"):
        run(main)
    assert "InvalidChannelReturn" in caplog.text
    assert "expected one of: Ok(payload=None), Error(payload)" in caplog.text


def test_bad_return_from_handle_in_crashes_the_channel(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        _, client = await probe()
        await joined_probe(client, "probe:1")
        join_ref = client.join_refs["probe:1"]
        client.push("probe:1", "bad_return")
        error = await client.assert_push("probe:1", "phx_error", {"reason": "channel_crash"})
        assert (error.ref, error.join_ref) == (join_ref, join_ref)
        # A crash does not run terminate.
        assert await receive(lambda m: type(m) is tuple and m[0] == "terminate", SHORT, None) is None

    with caplog.at_level(logging.ERROR, "alight.actors.crash"):
        run(main)
    assert "InvalidChannelReturn" in caplog.text
    assert "ProbeChannel.handle_in returned {'status': 'ok'}" in caplog.text
    assert "Ok(payload), Error(payload), Reply(status, payload), NoReply(), Stop(reason, reply=None)" in caplog.text
    assert "callback: handle_in" in caplog.text


def test_stop_with_a_crash_reason_is_phx_error_after_terminate(run: Runner) -> None:
    async def main() -> None:
        _, client = await probe()
        await joined_probe(client, "probe:1")
        join_ref = client.join_refs["probe:1"]
        client.push("probe:1", "stop_crash")
        await client.assert_push("probe:1", "phx_error", {"reason": "channel_crash"})
        assert await terminated("probe:1") == (join_ref, "boom")

    run(main)


def test_stop_with_a_shutdown_reason_replies_then_closes(run: Runner) -> None:
    async def main() -> None:
        _, client = await probe()
        await joined_probe(client, "probe:1")
        ref = client.push("probe:1", "stop_shutdown")
        first = await next_frame()
        assert type(first) is Reply
        assert (first.ref, first.status, first.payload) == (ref, "error", {"bye": True})
        second = await next_frame()
        assert type(second) is Message
        assert second.event == "phx_close"
        assert (await terminated("probe:1"))[1] == ("shutdown", "bye")

    run(main)


def test_handle_out_filters_and_rewrites_per_socket(run: Runner) -> None:
    async def main() -> None:
        app = Endpoint(check_origin=False)
        await start_endpoint(app)
        parent = self_pid()

        async def client(user_id: str, filtered: bool) -> list[tuple[str, Any]]:
            me = await connect(app, ProbeSocket, {"notify": self_pid(), "user_id": user_id, "filter": filtered})
            assert await me.join("probe:room") == ("ok", {})
            send(parent, ("ready", user_id))
            # "plain" is not intercepted: the fastlane writes it at once, so it may
            # overtake "filtered", which goes through the channel's handle_out.
            await me.assert_push("probe:room", "plain", {"n": 2})
            # A ping is handled after the queued broadcast: once it is answered,
            # handle_out has run.
            await me.assert_reply(me.push("probe:room", "ping"), "ok")
            return [(m.event, m.payload) for m in await drain() if isinstance(m, Message)]

        alice = InProcess(client, "alice", False)
        bob = InProcess(client, "bob", True)
        await receive(lambda m: m == ("ready", "alice"), WAIT)
        await receive(lambda m: m == ("ready", "bob"), WAIT)
        app.broadcast("probe:room", "filtered", {"n": 1})
        app.broadcast("probe:room", "plain", {"n": 2})
        assert await alice.result() == [("filtered", {"n": 1, "for": "alice"})]
        assert await bob.result() == []

    run(main)


def test_reply_from_another_process_via_socket_ref(run: Runner) -> None:
    async def main() -> None:
        _, client = await probe()
        await joined_probe(client, "probe:1")
        join_ref = client.join_refs["probe:1"]
        ref = client.push("probe:1", "defer", {})
        _, socket_ref = await receive(lambda m: type(m) is tuple and m[0] == "deferred", WAIT)
        assert isinstance(socket_ref, SocketRef)
        assert (socket_ref.topic, socket_ref.ref, socket_ref.join_ref) == ("probe:1", ref, join_ref)
        await no_frame()  # NoReply: nothing yet
        reply(socket_ref, Ok({"late": 1}))  # from the test process
        reply(socket_ref, Error({"again": 2}))  # any number of times
        first = await next_frame()
        second = await next_frame()
        assert type(first) is Reply
        assert (first.ref, first.join_ref, first.status, first.payload) == (
            ref,
            join_ref,
            "ok",
            {"late": 1},
        )
        assert type(second) is Reply
        assert (second.status, second.payload) == ("error", {"again": 2})
        with pytest.raises(TypeError, match="reply takes"):
            reply(socket_ref, {"status": "ok"})  # type: ignore[arg-type]
        # After the channel has gone, a reply is dropped.
        await client.leave("probe:1")
        await client.assert_push("probe:1", "phx_close")
        await terminated("probe:1")
        reply(socket_ref, Ok({"too": "late"}))
        await no_frame()

    run(main)


def test_handle_info_gets_other_messages(run: Runner) -> None:
    async def main() -> None:
        app, client = await probe()
        pid = await joined_probe(client, "probe:1")
        send(pid, ("hello", 1))
        assert await receive(lambda m: type(m) is tuple and m[0] == "info", WAIT) == ("info", "probe:1", ("hello", 1))
        # A broadcast on another topic the channel subscribed to is not intercepted.
        app.pubsub.subscribe(pid, "elsewhere")
        app.broadcast("elsewhere", "filtered", {"x": 1})
        _, _, message = await receive(lambda m: type(m) is tuple and m[0] == "info", WAIT)
        assert (message.topic, message.event) == ("elsewhere", "filtered")
        await no_frame()

    run(main)


def test_one_clients_crash_does_not_affect_another_on_the_same_topic(run: Runner) -> None:
    async def main() -> None:
        app, client = await started(UserSocket, {"user_id": "steady"})
        await client.join("room:shared")

        async def crasher() -> Message:
            other = await connect(app, UserSocket, {"user_id": "crasher"})
            await other.join("room:shared")
            other.push("room:shared", "crash")
            return await other.assert_push("room:shared", "phx_error")

        error = await InProcess(crasher).result()
        assert error.payload == {"reason": "channel_crash"}
        await client.assert_reply(client.push("room:shared", "ping", {"still": "here"}), "ok", {"still": "here"})
        assert await receive(lambda m: type(m) is Message and m.event == "phx_error", SHORT, None) is None
        # Broadcasts still reach the surviving client.
        client.push("room:shared", "shout", {"s": 1})
        await client.assert_push("room:shared", "shout", {"s": 1})

    run(main)


def test_connect_that_raises_or_a_bad_id_is_refused(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        app = Endpoint(check_origin=False)
        await start_endpoint(app)
        with pytest.raises(AssertionError, match="connect crashed"):
            await connect(app, ProbeSocket, {"raise": True})
        with pytest.raises(AssertionError, match="invalid socket id"):
            await connect(app, ProbeSocket, {"notify": self_pid(), "user_id": 42})
        assert app.stats.connections == 0

    with caplog.at_level(logging.ERROR):
        run(main)
    assert "connect blew up" in caplog.text
    assert "expected a str or None" in caplog.text


@pytest.mark.parametrize("how", ["stop_bad_reply", "info_stop_with_reply"])
def test_a_stop_with_a_bad_reply_is_an_invalid_return(run: Runner, caplog: pytest.LogCaptureFixture, how: str) -> None:
    async def main() -> None:
        _, client = await probe()
        pid = await joined_probe(client, "probe:1")
        if how == "stop_bad_reply":
            client.push("probe:1", "stop_bad_reply")
        else:
            send(pid, "stop_with_reply")
        await client.assert_push("probe:1", "phx_error", {"reason": "channel_crash"})
        await no_frame()

    with caplog.at_level(logging.ERROR, "alight.actors.crash"):
        run(main)
    assert "InvalidChannelReturn" in caplog.text


def test_leaves_and_crashes_are_logged_as_joins_are(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    """Phoenix-style lines at the endpoint's level (INFO): JOINED, LEFT, CRASHED."""

    async def main() -> None:
        _, client = await started()
        await client.join("room:logged")
        await client.leave("room:logged")
        await client.join("room:crashy")
        client.push("room:crashy", "crash", {})
        await client.assert_push("room:crashy", "phx_error")

    with caplog.at_level(logging.INFO, "alight.channels"):
        run(main)
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("alight.channels")]
    assert any(line.startswith("JOINED room:logged in ") for line in lines), lines
    assert any(line.startswith("LEFT room:logged (") for line in lines), lines
    assert any(line.startswith("CRASHED room:crashy: ") and "crash requested by the client" in line for line in lines)
    assert [record.levelno for record in caplog.records if record.getMessage().startswith(("LEFT", "CRASHED"))] == [
        logging.INFO,
        logging.INFO,
    ]
