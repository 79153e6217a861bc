"""The long-poll transport, exactly as the phoenix 1.8.16 client speaks it.

Every answer is HTTP 200 with the real status in the JSON body (PROTOCOL.md §5):
a GET without a usable session token creates a session and answers ``410`` with
its token; a GET with a token returns what the session has buffered (``200``) or
waits up to ``window`` seconds (``204``); a POST hands each ndjson line to the
session and answers ``200`` once all were handled (``408`` if not within the
window, ``410`` if the session is gone; ``413``, handling none of them, if one is
over the endpoint's ``max_frame_size``, as a WebSocket closes with 1009). A refused
connection or origin is ``{"status": 403}``.

Each client has a session process (under the endpoint's long-poll supervisor) that
owns a `LongPollConn` — the buffer the socket layer writes to — and the socket
process of the connection. The session is found through PubSub by the private
topic inside its signed token, so once nodes are clustered any node can serve any
request; a session on this node is reached directly. A session with no GET for
``inactivity`` seconds stops, and so does its socket (channels leave).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ..actors import ChildSpec, Down, DynamicSupervisor, ExitProcess, Pid, Ref, spawn_link
from ..actors._api import _me
from ..actors._process import Process
from ..channels.errors import ChannelError
from ..channels.message import Frame
from ..channels.serializer import decode_longpoll_body, longpoll_messages
from ..channels.token import sign, verify
from ._params import parse_params
from .base import CLOSE_NORMAL, CLOSE_POLICY, LONGPOLL, Accepted, Conn, ConnectInfo, Inbound, Refused, Sync, Synced
from .http import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from ..channels.endpoint import Endpoint, SocketMount

log = logging.getLogger("alight.transports.longpoll")

WINDOW = 10.0
"""Seconds a GET waits for messages, and a POST for its acknowledgement."""
PUBSUB_TIMEOUT = 2.0
"""Seconds to wait for a session on another node to answer."""
INACTIVITY = 15.0
"""A session with no GET for this long stops (checked every ``INACTIVITY`` s)."""
TOKEN_MAX_AGE = 1_209_600
"""Seconds a session token stays valid (two weeks, as Phoenix)."""
TOKEN_SALT = "alight longpoll"

JSON_HEADERS = (
    ("content-type", "application/json; charset=utf-8"),
    ("access-control-allow-origin", "*"),
    ("cache-control", "no-store"),
)


def _status(status: int, **fields: Any) -> HttpResponse:
    return HttpResponse(200, headers=JSON_HEADERS, body=orjson.dumps({"status": status, **fields}))


# -- the connection the socket layer writes to ----------------------------------------


class LongPollConn(Conn):
    """A bounded buffer of frames that the session hands to the next GET."""

    transport = LONGPOLL

    def __init__(self, session: Process, max_buffer: int, on_slow: Any = None) -> None:
        self.session = session
        self.max_buffer = max_buffer
        self.frames: deque[Frame] = deque()
        self.buffered = 0
        self.dropped_binary = 0
        self._closed = False
        self._on_slow = on_slow

    def write(self, frame: Frame) -> None:
        if self._closed:
            return
        if frame.binary:
            # The JS client cannot decode binary frames over long-poll (PROTOCOL.md §2.4).
            self.dropped_binary += 1
            log.warning("dropping a binary frame: long-poll clients cannot receive binary payloads")
            return
        self.frames.append(frame)
        self.buffered += len(frame.data)
        if self.buffered > self.max_buffer:
            if self._on_slow is not None:
                self._on_slow()
            self.close(CLOSE_POLICY, "slow consumer")
            return
        if len(self.frames) == 1:
            self.session.put(_Wake())

    def take(self) -> list[Frame]:
        frames = list(self.frames)
        self.frames.clear()
        self.buffered = 0
        return frames

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if not self._closed:
            self._closed = True
            self.session.put(_Wake())

    @property
    def closed(self) -> bool:
        return self._closed

    def supports_binary(self) -> bool:
        return False


# -- messages between request processes and sessions ----------------------------------


@dataclass(frozen=True, slots=True)
class _Wake:
    pass


@dataclass(frozen=True, slots=True)
class _Poll:
    reply_to: Pid
    ref: Ref


@dataclass(frozen=True, slots=True)
class _Post:
    reply_to: Pid
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
class _Started:
    ref: Ref
    outcome: Accepted | Refused
    token: str = ""


@dataclass(frozen=True, slots=True)
class _Tick:
    pass


# -- request handling -------------------------------------------------------------------


async def handle_longpoll(endpoint: Endpoint, mount: SocketMount, request: HttpRequest) -> HttpResponse:
    """Serve one long-poll HTTP request (runs in the request's process)."""
    if request.method == "OPTIONS":
        allow = request.header("access-control-request-headers") or ""
        return HttpResponse(
            200,
            headers=(
                ("access-control-allow-origin", "*"),
                ("access-control-allow-headers", allow),
                ("access-control-allow-methods", "get, post, options"),
                ("access-control-max-age", "3600"),
            ),
        )
    if request.method not in ("GET", "POST"):
        return HttpResponse(400)
    info = _connect_info(request)
    if not endpoint.origin_allowed(mount, info):
        endpoint.stats.refused += 1
        return _status(403)
    try:
        params = parse_params(request.query_string)
    except ValueError:
        return _status(403) if request.method == "GET" else _status(410)
    token = request.header("x-phoenix-longpoll-token") or params.get("token")
    topic = _verify(endpoint, token) if isinstance(token, str) else None
    if request.method == "GET":
        if topic is not None:
            result = await _poll(endpoint, topic, token)  # type: ignore[arg-type]
            if result is not None:
                return result
        return await _new_session(endpoint, mount, request, info)
    if topic is None:
        return _status(410)
    return await _post(endpoint, topic, request)


def _connect_info(request: HttpRequest) -> ConnectInfo:
    auth = request.header("x-phoenix-authtoken")
    return ConnectInfo(
        peer=request.peer,
        uri=request.path + ("?" + request.query_string if request.query_string else ""),
        headers=request.headers,
        user_agent=request.header("user-agent"),
        auth_token=auth,
        transport=LONGPOLL,
    )


def _verify(endpoint: Endpoint, token: str) -> dict[str, Any] | None:
    try:
        data = verify(endpoint.secret_key_base, TOKEN_SALT, token, max_age=TOKEN_MAX_AGE)
    except ChannelError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("topic"), str) else None


async def _find(endpoint: Endpoint, session: dict[str, Any], request: Any) -> tuple[Pid, Ref] | None:
    """Send ``request`` to the session (directly if local, else through PubSub) and
    wait for its `_Found`; returns the session pid and a monitor on it."""
    me = _me()
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
    return found.session, node.monitor(me, found.session)


async def _poll(endpoint: Endpoint, session: dict[str, Any], token: str) -> HttpResponse | None:
    me = _me()
    ref = me.node.make_ref()
    located = await _find(endpoint, session, _Poll(me.pid, ref))
    if located is None:
        return None
    _, monitor = located
    answer = await me.receive(
        lambda m: (type(m) is _PollResult and m.ref == ref) or (type(m) is Down and m.ref == monitor),
        WINDOW + PUBSUB_TIMEOUT,
        None,
    )
    me.node.demonitor(me, monitor, flush=True)
    if answer is None or type(answer) is Down:
        return _status(410)
    if not answer.messages:
        return _status(204, token=token, messages=[])
    return _status(200, token=token, messages=answer.messages)


async def _post(endpoint: Endpoint, session: dict[str, Any], request: HttpRequest) -> HttpResponse:
    me = _me()
    try:
        frames = decode_longpoll_body(request.body, request.header("content-type"))
    except ChannelError as error:
        log.warning("bad long-poll POST body: %s", error)
        return _status(400)
    if any(len(frame.data) > endpoint.max_frame_size for frame in frames):
        # The WebSocket's 1009: nothing of this POST is handled; the client retries.
        log.warning("long-poll POST refused: a frame over max_frame_size (%d bytes)", endpoint.max_frame_size)
        return _status(413)
    ref = me.node.make_ref()
    inbound = tuple(Inbound(frame.data, frame.binary) for frame in frames)
    located = await _find(endpoint, session, _Post(me.pid, ref, inbound))
    if located is None:
        return _status(410)
    _, monitor = located
    answer = await me.receive(
        lambda m: (type(m) is Synced and m.ref == ref) or (type(m) is Down and m.ref == monitor), WINDOW, None
    )
    me.node.demonitor(me, monitor, flush=True)
    if answer is None:
        return _status(408)
    if type(answer) is Down:
        return _status(410)
    return _status(200)


async def _new_session(endpoint: Endpoint, mount: SocketMount, request: HttpRequest, info: ConnectInfo) -> HttpResponse:
    me = _me()
    ref = me.node.make_ref()
    spec = ChildSpec(
        id="longpoll",
        start=lambda: spawn_link(run_session, endpoint, mount, request.query_string, info, me.pid, ref),
        restart="temporary",
        shutdown=5.0,
    )
    await DynamicSupervisor.start_child(endpoint.longpoll_supervisor, spec)
    started = await me.receive(lambda m: type(m) is _Started and m.ref == ref, WINDOW, None)
    if started is None or type(started.outcome) is Refused:
        return _status(403)
    return _status(410, token=started.token, messages=[])


# -- the session process -------------------------------------------------------------------


async def run_session(
    endpoint: Endpoint, mount: SocketMount, query: str, info: ConnectInfo, creator: Pid, ref: Ref
) -> None:
    """The body of a long-poll session process."""
    me = _me()
    node = me.node

    def on_slow() -> None:
        endpoint.stats.slow_consumer_disconnects += 1

    conn = LongPollConn(me, endpoint.max_buffer, on_slow)
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
    session = _Session(me, conn, socket_pid)
    try:
        await session.serve(socket_monitor)
    finally:
        session.finish()
        node.send(socket_pid, _transport_closed("session ended"))


def _transport_closed(reason: str) -> Any:
    from .base import TransportClosed

    return TransportClosed(reason)


class _Session:
    def __init__(self, me: Process, conn: LongPollConn, socket_pid: Pid) -> None:
        self.me = me
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
                node.send(message.reply_to, _Found(message.ref, me.pid))
                self.poll(message)
            elif kind is _Post:
                node.send(message.reply_to, _Found(message.ref, me.pid))
                for inbound in message.frames:
                    node.send(self.socket_pid, inbound)
                node.send(self.socket_pid, Sync(message.reply_to, message.ref))
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
        self.me.node.send(request.reply_to, _PollResult(request.ref, longpoll_messages(self.conn.take())))

    def finish(self) -> None:
        if self.waiting is not None:
            self.flush()


@dataclass(frozen=True, slots=True)
class _Timeout:
    ref: Ref
