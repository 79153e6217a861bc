"""The chat app of ``alight demo``: rooms, presence per device, and buttons that break things.

`ChatSocket` takes the connect parameters ``name`` and ``device`` (a browser's id);
`RoomChannel` serves ``room:*``. A join replies with the room, the user's name, the
node that serves the connection and the room's recent messages (`HistoryServer`),
then tracks ``name`` in the room's presence with ``{"device", "node"}`` and pushes
``presence_state``. Events a client may push:

==================  ==========================================================
``new_msg``         ``{"body": text}``: broadcast ``new_msg`` ``{"id", "name", "body",
                    "node", "at"}`` (``node``: the one that relayed it; ``at``: ms since
                    the epoch) to the room on every node; replies ``{"id"}``
``crash_channel``   the channel raises: the client gets ``phx_error`` and rejoins
``crash_socket``    replies, then the connection's socket process exits abnormally
                    (an exit signal to `Channel.socket_pid`): the server closes the
                    connection (1011) and the client reconnects and rejoins
``kill_node``       replies, broadcasts a ``notice`` to the room, then (after
                    `KILL_DELAY` s) SIGKILLs this node's OS process; the launcher
                    restarts it and the client reconnects to a node that is up
==================  ==========================================================

Bad input gets an ``error`` reply whose ``reason`` says what is wrong (`ChatLimits`):
a refused join for a bad name, device id or room name or one over the join rate, a
refused ``new_msg`` for an empty or long message or one over the rate. The connection itself is accepted even
with a bad name, so that the page can show that reason.

The endpoint serves the page at ``/`` (and alight.js at ``/alight.js``), checks
origins against the request's own host, and offers WebSocket and long-poll.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

from ...actors import ChildSpec, Pid, Supervisor, call, self_pid, send, send_after
from ...actors import exit as exit_signal
from ...channels import Channel, Endpoint, Error, NoReply, Ok, Reply, Socket, Stop
from ...dashboard import Dashboard
from ...metrics import EndpointMetrics
from ...transports.base import ConnectInfo
from ...transports.http import HttpRequest, HttpResponse
from ._history import NEW_MSG, HistoryServer
from ._limits import ChatLimits, LimitExceeded, RateLimit, check_device, check_message, check_name, check_room

KILL_DELAY = 0.3
"""Seconds between ``kill_node``'s reply and the SIGKILL, so the reply and the
notice leave the node first."""

PAGE = Path(__file__).parent / "static" / "index.html"

MAX_FRAME = 64 * 1024
"""Bytes in one WebSocket frame from a client, at most (the endpoint's ``max_frame_size``
default for the chat): ample for a join or a ``new_msg`` within the limits."""


def kill_this_process() -> None:
    """SIGKILL the current OS process: no cleanup, as when a machine loses power."""
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class _AfterJoin:
    """Sent by a channel to itself: track presence and push the state (pushes are not
    allowed inside ``join``)."""


@dataclass(frozen=True, slots=True)
class _CrashSocket:
    """Sent by a channel to itself after replying to ``crash_socket``."""


@dataclass(frozen=True, slots=True)
class _KillNode:
    """Sent by a channel to itself `KILL_DELAY` s after replying to ``kill_node``."""


class RoomChannel(Channel):
    """``room:NAME``: chat, presence per device, and the crash buttons (module doc)."""

    @property
    def chat(self) -> ChatEndpoint:
        return cast("ChatEndpoint", self.endpoint)

    @property
    def node_name(self) -> str:
        return self.endpoint.node.name

    async def join(self, topic: str, payload: Any) -> Ok | Error:
        limits = self.chat.limits
        refusal = self.assigns.get("refusal")
        if refusal is not None:
            return Error({"reason": refusal})
        try:
            room = check_room(limits, topic)
        except LimitExceeded as error:
            return Error({"reason": str(error)})
        joins: RateLimit = self.assigns["join_bucket"]
        if not joins.allow(asyncio.get_running_loop().time()):
            wait = joins.retry_after()
            return Error({"reason": f"slow down: at most {limits.join_burst} joins at once, retry in {wait:.1f} s"})
        history = await call(self.chat.history_name, ("history", topic))
        send(self_pid(), _AfterJoin())
        return Ok({"room": room, "name": self.assigns["name"], "node": self.node_name, "history": history})

    async def handle_in(self, event: str, payload: Any) -> Ok | Error | Reply | NoReply | Stop:
        if event == NEW_MSG:
            return self.new_msg(payload)
        if event == "crash_channel":
            raise RuntimeError(f"crash_channel requested by {self.assigns['name']} in {self.topic}")
        if event == "crash_socket":
            send(self_pid(), _CrashSocket())  # after the reply is written
            return Ok({"node": self.node_name})
        if event == "kill_node":
            self.broadcast("notice", {"text": f"{self.assigns['name']} killed {self.node_name}"})
            send_after(KILL_DELAY, self_pid(), _KillNode())
            return Ok({"node": self.node_name})
        return Error({"reason": f"unknown event {event!r}"})

    def new_msg(self, payload: Any) -> Ok | Error:
        limits = self.chat.limits
        try:
            body = check_message(limits, payload)
        except LimitExceeded as error:
            return Error({"reason": str(error)})
        bucket: RateLimit = self.assigns["bucket"]
        if not bucket.allow(asyncio.get_running_loop().time()):
            wait = bucket.retry_after()
            return Error({"reason": f"slow down: at most {limits.burst} messages at once, retry in {wait:.1f} s"})
        message = {
            "id": secrets.token_hex(8),
            "name": self.assigns["name"],
            "body": body,
            "node": self.node_name,
            "at": int(time.time() * 1000),  # for display only
        }
        self.broadcast(NEW_MSG, message)
        return Ok({"id": message["id"]})

    async def handle_info(self, message: Any) -> None:
        kind = type(message)
        if kind is _AfterJoin:
            presence = self.endpoint.presence
            assert presence is not None  # ChatEndpoint turns it on
            meta = {"device": self.assigns["device"], "node": self.node_name}
            await presence.track(self, self.assigns["name"], meta)
            self.push("presence_state", await presence.state(self))
        elif kind is _CrashSocket:
            # Any reason but normal/shutdown: the socket process dies as if it had
            # crashed, and the listener closes the connection with 1011.
            exit_signal(self.socket_pid, "crash_socket_requested")
        elif kind is _KillNode:
            self.chat.kill_node()


class ChatSocket(Socket):
    """Connect parameters: ``name`` (shown to others) and ``device`` (one per browser).

    A bad name or device id does not refuse the connection (the browser would only
    see a failed WebSocket): every join then answers ``{"reason": ...}``.

    The ``new_msg`` and join rate limits are buckets per connection, shared by its
    channels (the assigns each channel copies hold the same `RateLimit`s), so neither
    leaving and rejoining a room nor joining more rooms sends faster, and a join/leave
    loop cannot flood a room with presence diffs."""

    channels: ClassVar[dict[str, type[Channel]]] = {"room:*": RoomChannel}
    max_channels: ClassVar[int] = 10

    async def connect(self, params: dict[str, Any], connect_info: ConnectInfo) -> bool:
        limits = cast("ChatEndpoint", self.endpoint).limits
        self.assigns["bucket"] = RateLimit(limits.burst, limits.per_second)
        self.assigns["join_bucket"] = RateLimit(limits.join_burst, limits.joins_per_second)
        try:
            self.assigns["name"] = check_name(limits, params.get("name"))
            self.assigns["device"] = check_device(limits, params.get("device"))
        except LimitExceeded as error:
            self.assigns["refusal"] = str(error)
        return True


class ChatEndpoint(Endpoint):
    """The chat's endpoint: the socket at ``/socket``, the page at ``/``, presence on,
    the dashboard at ``/dashboard`` and metrics at ``/metrics`` (both on unless
    ``dashboard=False`` / ``metrics=False``), and a `HistoryServer` beside the
    endpoint's own tree.

    ``kill_node`` is what ``kill_node`` does after its reply (default:
    `kill_this_process`); tests pass a harmless stand-in. Other keyword arguments go
    to `Endpoint`.
    """

    def __init__(
        self,
        *,
        limits: ChatLimits | None = None,
        kill_node: Callable[[], None] = kill_this_process,
        name: str = "chat",
        dashboard: bool = True,
        metrics: bool = True,
        **settings: Any,
    ) -> None:
        settings.setdefault("check_origin", "conn")
        # A message is at most `ChatLimits.max_message` characters: a frame far over
        # that is closed (1009) before it is parsed, not decoded and then refused.
        settings.setdefault("max_frame_size", MAX_FRAME)
        super().__init__(name=name, presence=True, **settings)
        # The demo is about seeing inside: the live dashboard and Prometheus metrics on
        # every node (loopback only, as `alight demo` binds 127.0.0.1).
        if dashboard:
            Dashboard(self)
        if metrics:
            EndpointMetrics(self)
        self.limits = limits or ChatLimits()
        self.kill_node = kill_node
        self.history_name = f"{name}.history"
        """The registered name of this node's `HistoryServer`."""
        self._page = PAGE.read_bytes()
        self.socket("/socket", ChatSocket, websocket=True, longpoll=True)
        self.route("GET", "/", self.page)

    async def page(self, request: HttpRequest) -> HttpResponse:
        """``GET /``: the chat page (it loads ``/alight.js`` from this endpoint)."""
        headers = (
            ("content-type", "text/html; charset=utf-8"),
            ("cache-control", "no-cache"),
            ("x-content-type-options", "nosniff"),
        )
        return HttpResponse(200, headers, self._page)

    def child_spec(self, *, port: int | None = None, host: str = "127.0.0.1", reuse_port: bool = False) -> ChildSpec:
        """The endpoint's tree, then the history server, under one ``one_for_one``
        supervisor."""
        inner = super().child_spec(port=port, host=host, reuse_port=reuse_port)
        limits = self.limits
        history = HistoryServer.child_spec(
            self, limits.history, limits.history_rooms, id="history", name=self.history_name
        )
        # The history server subscribes through the endpoint's PubSub, which exists
        # once the endpoint's tree has started: the tree first.
        children = [inner, history]

        async def start() -> Pid:
            return await Supervisor.start_link(children, strategy="one_for_one", name=None)

        return ChildSpec(id=("chat", self.name), start=start, type="supervisor", shutdown="infinity")


def make_app(**settings: Any) -> ChatEndpoint:
    """A fresh chat endpoint (``settings`` go to `ChatEndpoint`)."""
    return ChatEndpoint(**settings)


app = make_app()
"""What ``alight demo`` runs on every node: ``alight.demo.chat.app:app``."""
