"""Long-poll sessions: the endpoint's side of the long-poll transport.

`LongPoll` is the endpoint extension that serves ``<mount>/longpoll`` for every socket
mounted with ``longpoll=True`` (``endpoint.socket(...)`` adds it); the wire — body
codec, the `LongPollConn` buffer, the answers' shapes — is `alight.transports.longpoll`.

Each client has a session process (under the extension's DynamicSupervisor, started
in `Phase.SESSIONS`) that owns a `LongPollConn` and the socket process of the
connection. The session is found through PubSub by the private topic inside its
signed token, so once nodes are clustered any node can serve any request; a session
on this node is reached directly. A session with no GET for ``inactivity`` seconds
stops, and so does its socket (channels leave).

A request that found its session through PubSub is answered through PubSub too: it
names a private reply topic (`Reply.topic`) that it subscribed to, and the session
answers with a direct broadcast to the requester's node. So nothing but PubSub needs to
reach across nodes — the cluster's mesh or a broker (`alight.cluster.redis`), whose
data-only codec carries `WIRE_RECORDS`. Where pids of other nodes can be monitored
(the mesh), the request also monitors the session and answers 410 at once if it ends;
otherwise it waits for its answer's bound.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..actors import ChildSpec, Down, DynamicSupervisor, ExitProcess, Pid, Ref, spawn_link
from ..actors.lowlevel import Process, current_process
from ..transports.base import Accepted, ConnectInfo, Inbound, Refused, Sync, Synced, TransportClosed
from ..transports.errors import InvalidLongPollBody
from ..transports.http import HttpRequest, HttpResponse
from ..transports.longpoll import (
    LongPollConn,
    decode_longpoll_body,
    longpoll_connect_info,
    longpoll_messages,
    preflight_response,
    status_response,
)
from ..transports.params import parse_params
from .errors import EndpointNotRunning, InvalidToken
from .extension import Extension, Phase
from .token import sign, verify

if TYPE_CHECKING:
    from ..actors import Node
    from .endpoint import Endpoint, SocketMount
    from .pubsub import PubSub

log = logging.getLogger("alight.channels.longpoll")

WINDOW = 10.0
"""Seconds a GET waits for messages, and a POST for its acknowledgement."""
PUBSUB_TIMEOUT = 2.0
"""Seconds to wait for a session on another node to answer."""
INACTIVITY = 15.0
"""A session with no GET for this long stops (checked every ``INACTIVITY`` s)."""
TOKEN_MAX_AGE = 1_209_600
"""Seconds a session token stays valid (two weeks, as Phoenix)."""
TOKEN_SALT = "alight longpoll"


class LongPoll(Extension):
    """Serves the long-poll transport of an endpoint's sockets (module docstring).

    ``endpoint.socket(path, MySocket, longpoll=True)`` installs one; ``endpoint.longpoll``
    is it. `supervisor` is the DynamicSupervisor of the sessions once running.
    """

    phase = Phase.SESSIONS

    def __init__(self) -> None:
        self._supervisor: Pid | None = None

    @property
    def supervisor(self) -> Pid:
        """The DynamicSupervisor of this endpoint's sessions; `EndpointNotRunning` before it starts."""
        if self._supervisor is None:
            raise EndpointNotRunning("the endpoint's long-poll sessions are not running")
        return self._supervisor

    def installed(self, endpoint: Endpoint) -> None:
        endpoint.longpoll = self

    def child_specs(self, endpoint: Endpoint) -> Sequence[ChildSpec]:
        async def start() -> Pid:
            pid = await DynamicSupervisor.start_link(max_restarts=1_000_000, max_seconds=1.0)
            self._supervisor = pid
            return pid

        return [ChildSpec(id="longpoll", start=start, type="supervisor")]

    async def draining(self, endpoint: Endpoint) -> Sequence[Pid]:
        """The sessions end with the WebSockets, batch by batch: a client's next poll
        gets 410, and it opens a session elsewhere (phoenix.js does)."""
        if self._supervisor is None:
            return ()
        children = await DynamicSupervisor.which_children(self._supervisor)
        return [child.pid for child in children if child.pid is not None]

    async def handle_http(self, endpoint: Endpoint, request: HttpRequest) -> HttpResponse | None:
        mount = endpoint.match_longpoll(request.path)
        if mount is None:
            return None
        return await handle_longpoll(endpoint, self, mount, request)


# -- request handling -------------------------------------------------------------------


async def handle_longpoll(
    endpoint: Endpoint, longpoll: LongPoll, mount: SocketMount, request: HttpRequest
) -> HttpResponse:
    """Serve one long-poll HTTP request (runs in the request's process)."""
    if request.method == "OPTIONS":
        return preflight_response(request)
    if request.method not in ("GET", "POST"):
        return HttpResponse(400)
    info = longpoll_connect_info(request)
    if not endpoint.origin_allowed(mount, info):
        endpoint.stats.refused += 1
        return status_response(403)
    try:
        params = parse_params(request.query_string)
    except ValueError:
        return status_response(403) if request.method == "GET" else status_response(410)
    token = request.header("x-phoenix-longpoll-token") or params.get("token")
    topic = _verify(endpoint, token) if isinstance(token, str) else None
    if request.method == "GET":
        if topic is not None:
            result = await _poll(endpoint, topic, token)  # type: ignore[arg-type]
            if result is not None:
                return result
        return await _new_session(endpoint, longpoll, mount, request, info)
    if topic is None:
        return status_response(410)
    return await _post(endpoint, topic, request)


def _verify(endpoint: Endpoint, token: str) -> dict[str, Any] | None:
    try:
        data = verify(endpoint.secret_key_base, TOKEN_SALT, token, max_age=TOKEN_MAX_AGE)
    except InvalidToken:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("topic"), str) else None


# -- messages between request processes and sessions ----------------------------------


@dataclass(frozen=True, slots=True)
class _Wake:
    pass


@dataclass(frozen=True, slots=True)
class Reply:
    """Where a session answers a request: the request process, and for a request that
    came through PubSub the private topic it subscribed to on its node (the session
    answers by a direct broadcast there; None: send to the pid)."""

    pid: Pid
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class _Poll:
    reply_to: Reply
    ref: Ref


@dataclass(frozen=True, slots=True)
class _Post:
    reply_to: Reply
    ref: Ref
    frames: tuple[Inbound, ...]


@dataclass(frozen=True, slots=True)
class _Found:
    """A session acknowledges a request at once (found), then answers later."""

    ref: Ref
    session: Pid


@dataclass(frozen=True, slots=True)
class _PollResult:
    ref: Ref
    messages: list[str]


@dataclass(frozen=True, slots=True)
class _Posted:
    """Every frame of a POST has been handled by the socket process."""

    ref: Ref


@dataclass(frozen=True, slots=True)
class _Started:
    ref: Ref
    outcome: Accepted | Refused
    token: str = ""


@dataclass(frozen=True, slots=True)
class _Tick:
    pass


WIRE_RECORDS: tuple[type, ...] = (Reply, _Poll, _Post, _Found, _PollResult, _Posted, Inbound)
"""The records a request and a session of different nodes exchange through PubSub, for
a codec that carries only registered records (a broker's)."""


def _answer(node: Node, pubsub: PubSub, reply_to: Reply, message: Any) -> None:
    """Send ``message`` where ``reply_to`` says (module docstring)."""
    if reply_to.topic is None:
        node.send(reply_to.pid, message)
    else:
        pubsub.direct_broadcast(reply_to.pid.node, reply_to.topic, message)


async def _find(endpoint: Endpoint, session: dict[str, Any], request: Any) -> tuple[Pid, Ref | None] | None:
    """Send ``request`` to the session (directly if local, else through PubSub) and
    wait for its `_Found`; returns the session pid and a monitor on it (None where
    pids of its node cannot be monitored: the nodes share only a broker)."""
    me = current_process()
    node = me.node
    ref = request.ref
    if session.get("node") == node.name and session.get("creation") == node.creation:
        pid = Pid(node.name, node.creation, int(session.get("serial", -1)))
        if node.lookup(pid) is None:
            return None
        monitor = node.monitor(me, pid)
        node.send(pid, request)
        return pid, monitor
    endpoint.pubsub.broadcast(session["topic"], request)
    found = await me.receive(lambda m: type(m) is _Found and m.ref == ref, PUBSUB_TIMEOUT, None)
    if found is None:
        return None
    session_pid: Pid = found.session
    return session_pid, node.monitor(me, session_pid) if node.remote is not None else None


def _request(endpoint: Endpoint, session: dict[str, Any]) -> tuple[Reply, Ref]:
    """Where the session answers this request process, and the request's ref: for a
    session of another node, a private reply topic subscribed to here."""
    me = current_process()
    node = me.node
    if session.get("node") == node.name and session.get("creation") == node.creation:
        return Reply(me.pid), node.make_ref()
    topic = f"phx:lp:reply:{secrets.token_urlsafe(12)}"
    endpoint.pubsub.subscribe(me.pid, topic)
    return Reply(me.pid, topic), node.make_ref()


def _is_down(message: Any, monitor: Ref | None) -> bool:
    return monitor is not None and type(message) is Down and message.ref == monitor


async def _poll(endpoint: Endpoint, session: dict[str, Any], token: str) -> HttpResponse | None:
    me = current_process()
    reply_to, ref = _request(endpoint, session)
    located = await _find(endpoint, session, _Poll(reply_to, ref))
    if located is None:
        return None
    _, monitor = located
    answer = await me.receive(
        lambda m: (type(m) is _PollResult and m.ref == ref) or _is_down(m, monitor),
        WINDOW + PUBSUB_TIMEOUT,
        None,
    )
    if monitor is not None:
        me.node.demonitor(me, monitor, flush=True)
    if answer is None or type(answer) is Down:
        return status_response(410)
    if not answer.messages:
        return status_response(204, token=token, messages=[])
    return status_response(200, token=token, messages=answer.messages)


async def _post(endpoint: Endpoint, session: dict[str, Any], request: HttpRequest) -> HttpResponse:
    me = current_process()
    try:
        frames = decode_longpoll_body(request.body, request.header("content-type"))
    except InvalidLongPollBody as error:
        log.warning("bad long-poll POST body: %s", error)
        return status_response(400)
    if any(len(frame.data) > endpoint.connection_limits.max_frame_size for frame in frames):
        endpoint.transport_stats.frames_too_big += 1  # the policy's count, from the request process
        # The WebSocket's 1009: nothing of this POST is handled; the client retries.
        log.warning(
            "long-poll POST refused: a frame over max_frame_size (%d bytes)", endpoint.connection_limits.max_frame_size
        )
        return status_response(413)
    reply_to, ref = _request(endpoint, session)
    inbound = tuple(Inbound(frame.data, frame.binary) for frame in frames)
    located = await _find(endpoint, session, _Post(reply_to, ref, inbound))
    if located is None:
        return status_response(410)
    _, monitor = located
    answer = await me.receive(lambda m: (type(m) is _Posted and m.ref == ref) or _is_down(m, monitor), WINDOW, None)
    if monitor is not None:
        me.node.demonitor(me, monitor, flush=True)
    if answer is None:
        return status_response(408)
    if type(answer) is Down:
        return status_response(410)
    return status_response(200)


async def _new_session(
    endpoint: Endpoint, longpoll: LongPoll, mount: SocketMount, request: HttpRequest, info: ConnectInfo
) -> HttpResponse:
    me = current_process()
    ref = me.node.make_ref()
    spec = ChildSpec(
        id="longpoll",
        start=lambda: spawn_link(run_session, endpoint, mount, request.query_string, info, me.pid, ref),
        restart="temporary",
        shutdown=5.0,
    )
    await DynamicSupervisor.start_child(longpoll.supervisor, spec)
    started = await me.receive(lambda m: type(m) is _Started and m.ref == ref, WINDOW, None)
    if started is None or type(started.outcome) is Refused:
        return status_response(403)
    return status_response(410, token=started.token, messages=[])


# -- the session process -------------------------------------------------------------------


async def run_session(
    endpoint: Endpoint, mount: SocketMount, query: str, info: ConnectInfo, creator: Pid, ref: Ref
) -> None:
    """The body of a long-poll session process."""
    me = current_process()
    node = me.node

    conn = LongPollConn(lambda: me.put(_Wake()), endpoint.connection_limits, endpoint.transport_stats)
    endpoint.start_socket(mount, conn, query, info, [], lambda outcome: me.put(outcome), me)
    outcome = await me.receive((Accepted, Refused))
    if type(outcome) is Refused:
        node.send(creator, _Started(ref, outcome))
        return
    socket_pid = outcome.pid
    socket_monitor = node.monitor(me, socket_pid)
    topic = f"phx:lp:{secrets.token_urlsafe(16)}{int(time.time() * 1000)}"
    endpoint.pubsub.subscribe(me.pid, topic)
    token = sign(
        endpoint.secret_key_base,
        TOKEN_SALT,
        {"topic": topic, "node": node.name, "creation": node.creation, "serial": me.pid.serial},
    )
    node.send(creator, _Started(ref, outcome, token))
    session = _Session(me, conn, socket_pid, endpoint.pubsub)
    try:
        await session.serve(socket_monitor)
    finally:
        session.finish()
        node.send(socket_pid, TransportClosed("session ended"))


class _Session:
    def __init__(self, me: Process, conn: LongPollConn, socket_pid: Pid, pubsub: PubSub) -> None:
        self.me = me
        self.pubsub = pubsub
        self.posts: dict[Ref, Reply] = {}
        """POSTs whose frames the socket is handling, by ref: answered on its `Synced`."""
        self.conn = conn
        self.socket_pid = socket_pid
        self.waiting: _Poll | None = None
        self.wait_timer: Ref | None = None
        self.last_poll = time.monotonic()

    async def serve(self, socket_monitor: Ref) -> None:
        me = self.me
        node = me.node
        node.send_after(INACTIVITY, me.pid, _Tick())
        while True:
            message = await me.receive()
            kind = type(message)
            if kind is _Poll:
                self.answer(message.reply_to, _Found(message.ref, me.pid))
                self.poll(message)
            elif kind is _Post:
                self.answer(message.reply_to, _Found(message.ref, me.pid))
                for inbound in message.frames:
                    node.send(self.socket_pid, inbound)
                self.posts[message.ref] = message.reply_to
                node.send(self.socket_pid, Sync(me.pid, message.ref))
            elif kind is Synced:
                reply_to = self.posts.pop(message.ref, None)
                if reply_to is not None:
                    self.answer(reply_to, _Posted(message.ref))
            elif kind is _Wake:
                if self.waiting is not None and (self.conn.frames or self.conn.closed):
                    self.flush()
                if self.conn.closed and not self.conn.frames:
                    raise ExitProcess(("shutdown", "closed"))
            elif kind is _Timeout:
                if self.waiting is not None and self.waiting.ref == message.ref:
                    self.flush()
            elif kind is _Tick:
                if time.monotonic() - self.last_poll > INACTIVITY:
                    raise ExitProcess(("shutdown", "inactive"))
                node.send_after(INACTIVITY, me.pid, _Tick())
            elif kind is Down and message.ref == socket_monitor:
                # The socket ended (disconnect, invalid frame): what it wrote last is
                # still buffered for a waiting GET; later requests find no session.
                if self.waiting is not None:
                    self.flush()
                raise ExitProcess(("shutdown", "closed"))

    def poll(self, request: _Poll) -> None:
        self.last_poll = time.monotonic()
        if self.waiting is not None:
            # One GET at a time: the older one gets an empty answer.
            self.flush()
        self.waiting = request
        if self.conn.frames:
            self.flush()
            return
        self.wait_timer = self.me.node.send_after(WINDOW, self.me.pid, _Timeout(request.ref))

    def flush(self) -> None:
        request = self.waiting
        if request is None:
            return
        self.waiting = None
        if self.wait_timer is not None:
            self.me.node.cancel_timer(self.wait_timer)
            self.wait_timer = None
        self.last_poll = time.monotonic()
        self.answer(request.reply_to, _PollResult(request.ref, longpoll_messages(self.conn.take())))

    def answer(self, reply_to: Reply, message: Any) -> None:
        _answer(self.me.node, self.pubsub, reply_to, message)

    def finish(self) -> None:
        if self.waiting is not None:
            self.flush()


@dataclass(frozen=True, slots=True)
class _Timeout:
    ref: Ref


__all__ = [
    "INACTIVITY",
    "PUBSUB_TIMEOUT",
    "TOKEN_MAX_AGE",
    "TOKEN_SALT",
    "WINDOW",
    "WIRE_RECORDS",
    "LongPoll",
    "Reply",
    "handle_longpoll",
]
