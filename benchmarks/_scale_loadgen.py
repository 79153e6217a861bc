"""Load generator of ``benchmarks/scale.py``: thousands of Phoenix V2 WebSocket clients
in one process, driven by commands; ``scale.py`` runs several side by side (a process
may hold no more file descriptors than ``RLIMIT_NOFILE``).

``python benchmarks/_scale_loadgen.py --url ws://127.0.0.1:P/socket/websocket --first I``
reads one JSON command per line on stdin and answers each with one JSON line on stdout
(``{"error": ...}`` when it failed); end of input closes every client and exits.

- ``{"cmd": "open", "n": N, "rooms": false}``: connect members ``I .. I+N-1`` (user id
  ``u<i>``), each joining ``scale:all`` (or, with ``rooms``, ``scale:room:<i // 100>``, the
  rooms with presence). Answers ``{"joined", "seconds", "per_s"}``: connections + joins
  per second over the ramp.
- ``{"cmd": "arm"}``: forget earlier deliveries and joins (answers at once, with
  ``on_node``: how many members are joined on each node).
- ``{"cmd": "broadcast", "count": B, "interval": s}``: the control client asks for B
  broadcasts to ``scale:all``, one every ``interval`` seconds, each carrying the time it
  was sent (``time.monotonic()``: CLOCK_MONOTONIC, the same clock in every process).
- ``{"cmd": "collect", "count": B}``: waits until every member has B broadcasts;
  answers the delays in ms (receive time - send time) of every delivery, and this
  process's CPU seconds since ``arm``.
- ``{"cmd": "summary", "rooms": R, "nodes": [names]}``: opens control connections until
  it holds one to every named node (the kernel spreads connections over the nodes that
  share the port), asks each for its presence summary (``scale_app.py``), answers
  ``{name: summary}``.
- ``{"cmd": "joined", "timeout": s, "gone": node}``: waits until every member is joined
  again (reconnected and rejoined, as phoenix.js does, with its backoff and jitter), and
  with ``gone``, none on that node;
  answers ``{"at": time.monotonic() of the last join, "reconnects": n,
  "peak_joins_per_s": most joins in one second since ``arm``}``.
- ``{"cmd": "ticker", "rooms": R, "interval": s}``: from now on, numbered broadcasts to
  every room (``broadcast_rooms``), one every ``interval`` s, through a control
  connection to any node (reconnected when its node goes); ``{"cmd": "ticker_stop"}``
  stops it and answers ``{"sent": {seq: time}, "uncertain": [seq]}`` (requests that got
  no reply: their node went, they may or may not have been broadcast).
- ``{"cmd": "loss", "sent", "uncertain", "windows": {node: time}}``: how many numbered
  broadcasts members missed among those sent while they were joined, but not once their
  node had begun to drain (``windows``); answers ``{"expected", "missing",
  "duplicates", "examples"}``.

Members reconnect by themselves whenever their connection closes (phoenix.js:
``reconnectAfterMs`` with jitter, `alight.client.backoff`), and send a heartbeat every
`HEARTBEAT` seconds so that no server idle timeout closes them. At most
`CONNECT_CONCURRENCY` connections are being opened at once (a real crowd would open
more; the server's listen backlog would then drop SYNs and the clients retry, which
this process would only count as time). Sockets are bound to 127.0.0.x source
addresses, `PER_SOURCE` clients each (the ephemeral port range is per source address),
with ``SO_LINGER 0`` so that closing leaves no TIME_WAIT behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import socket
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import uvloop
from picows import WSError, WSFrame, WSListener, WSMsgType, WSParsedURL, WSTransport, ws_connect

from alight.benchmarks._loadgen import socket_for
from alight.client import backoff

CONNECT_CONCURRENCY = 256
PER_SOURCE = 5000
HEARTBEAT = 25.0
"""Seconds between a member's heartbeats (phoenix.js: 30; servers time out at 60)."""
JOIN_TIMEOUT = 10.0
"""Seconds for a join's reply (phoenix.js's push timeout); then the member starts again."""
CONNECT_TIMEOUT = 10.0
"""Seconds for the TCP connect and the WebSocket handshake together."""
ROOM_SIZE = 100
MAX_CONTROL_TRIES = 300
"""Connections opened at most to find one on each node."""


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # an abandoned attempt's outcome: retrieved, not logged


class LoadgenError(Exception):
    """A command could not be completed; the message says why."""


class Member(WSListener):
    """One client: connects, joins its topic, counts broadcasts, reconnects when closed."""

    def __init__(self, crowd: Crowd, index: int, topic: str) -> None:
        super().__init__()
        self.crowd = crowd
        self.index = index
        self.topic = topic
        self.transport: WSTransport | None = None
        self.joined = False
        self.pending = False  # a reconnect is scheduled
        self.tries = 0
        self.refs = 0
        self.join_ref = ""
        self.node = ""
        """The node of the current session (from the room's join reply)."""
        self.joined_at = 0.0

    # -- picows callbacks -------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        if self.transport is not None:  # an abandoned attempt that opened after all
            transport.disconnect(graceful=False)
            return
        self.transport = transport
        self.refs += 1
        self.join_ref = str(self.refs)
        transport.send(WSMsgType.TEXT, orjson.dumps([self.join_ref, self.join_ref, self.topic, "phx_join", {}]))
        self.crowd.loop.call_later(JOIN_TIMEOUT, self._check_joined, transport)

    def _check_joined(self, transport: WSTransport) -> None:
        if self.transport is transport and not self.joined:  # no reply in time: start again
            self.crowd.failures["join timeout"] += 1
            transport.disconnect(graceful=False)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.disconnect()
            return
        if frame.msg_type != WSMsgType.TEXT:
            return
        data = frame.get_payload_as_bytes()
        if b'"presence_' in data[:120]:
            return  # presence_state / presence_diff of the room: not what is measured
        message = orjson.loads(data)
        event = message[3]
        if event == "msg":
            payload = message[4]
            seq = payload.get("seq")
            if seq is None:
                self.crowd.delivered(payload["ts"])
            else:
                self.crowd.received_seq(self, seq)
        elif event == "phx_reply" and message[1] == self.join_ref and not self.joined:
            if message[4].get("status") != "ok":
                self.crowd.fail(LoadgenError(f"join of {self.topic} refused: {message[4]}"))
                return
            self.joined = True
            self.tries = 0
            response = message[4].get("response")
            self.node = response.get("node", "") if isinstance(response, dict) else ""
            self.joined_at = time.monotonic()
            self.crowd.member_joined(self)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.transport is not transport:
            return  # not this member's connection (see on_ws_connected)
        self.transport = None
        if self.joined:
            self.joined = False
            self.crowd.member_lost(self)
            self.crowd.sessions[self.index].append((self.node, self.joined_at, time.monotonic()))
        self.crowd.reconnect_later(self)

    # -- from the crowd ---------------------------------------------------------------

    def heartbeat(self) -> None:
        if self.transport is not None and self.joined:
            self.refs += 1
            self.transport.send(WSMsgType.TEXT, orjson.dumps([None, str(self.refs), "phoenix", "heartbeat", {}]))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.disconnect(graceful=False)


class Control(WSListener):
    """The control client: joins ``scale:control`` and sends requests, one at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.transport: WSTransport | None = None
        self.refs = 0
        self.waiting: dict[str, asyncio.Future[Any]] = {}
        self.closed = False

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type != WSMsgType.TEXT:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.disconnect()
            return
        message = orjson.loads(frame.get_payload_as_bytes())
        waiter = self.waiting.pop(message[1], None) if message[3] == "phx_reply" else None
        if waiter is not None and not waiter.done():
            reply = message[4]
            if reply.get("status") == "ok":
                waiter.set_result(reply.get("response"))
            else:
                waiter.set_exception(LoadgenError(f"control {message[2]}: {reply}"))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed = True
        for waiter in self.waiting.values():
            if not waiter.done():
                waiter.set_exception(LoadgenError("control connection closed"))
        self.waiting.clear()

    def push(self, event: str, payload: Any, topic: str = "scale:control") -> asyncio.Future[Any]:
        if self.transport is None or self.closed:
            raise LoadgenError("control connection closed")
        self.refs += 1
        ref = str(self.refs)
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting[ref] = waiter
        join_ref = None if topic == "phoenix" else "1"  # the join is ref "1"
        self.transport.send(WSMsgType.TEXT, orjson.dumps([join_ref, ref, topic, event, payload]))
        return waiter

    async def request(self, event: str, payload: Any) -> Any:
        async with asyncio.timeout(JOIN_TIMEOUT):
            return await self.push(event, payload)

    def heartbeat(self) -> None:
        if not self.closed:
            self.push("heartbeat", {}, "phoenix").add_done_callback(lambda f: f.exception())


class Crowd:
    """Every member of the run, the counts the commands wait on, and the control clients."""

    def __init__(self, url: str, first: int) -> None:
        self.url = url
        self.first = first
        self.loop = asyncio.get_running_loop()
        self.members: list[Member] = []
        self.gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        self.joined = 0
        self.reconnects = 0
        self.last_join = 0.0
        self.closing = False
        self.failure: BaseException | None = None
        self.changed = asyncio.Event()
        self.samples: list[float] = []  # receive delays of the broadcasts since `arm`
        self.cpu = 0.0
        self.controls: dict[str, Control] = {}
        self.failures: Counter[str] = Counter()
        self.attempts = self.connecting = 0
        self.on_node: Counter[str] = Counter()
        """Members joined, by the node of their session."""
        self.join_times: list[float] = []
        """When members joined since the last `arm` (the peak join rate)."""
        self.sessions: defaultdict[int, list[tuple[str, float, float]]] = defaultdict(list)
        """Member index -> its ended sessions: (node, joined at, left at)."""
        self.seqs: defaultdict[int, Counter[int]] = defaultdict(Counter)
        """Member index -> how many times each numbered broadcast arrived."""
        self.ticker: asyncio.Task[dict[str, Any]] | None = None
        self.ticking = False

    # -- members ----------------------------------------------------------------------

    def _source(self, index: int) -> str:
        return f"127.0.0.{2 + index // PER_SOURCE}"

    async def connect(self, member: Member) -> None:
        member.pending = False
        async with self.gate:
            if self.closing or member.transport is not None:
                return
            self.attempts += 1
            self.connecting += 1
            attempt = self.loop.create_task(
                ws_connect(
                    lambda: member,
                    f"{self.url}?vsn=2.0.0&user_id=u{member.index}",
                    socket_factory=self._connected(self._source(member.index)),
                    websocket_handshake_timeout=CONNECT_TIMEOUT,
                    enable_auto_pong=True,
                )
            )
            try:
                # Waited for, not awaited: under a storm an attempt was seen to ignore
                # its cancellation for good; one that overruns is abandoned (and its
                # connection dropped if it ever opens, see `Member.on_ws_connected`).
                done, _ = await asyncio.wait({attempt}, timeout=CONNECT_TIMEOUT + 1)
                if not done:
                    attempt.cancel()
                    attempt.add_done_callback(_retrieve)
                    raise TimeoutError("connect attempt overran")
                attempt.result()
            except (OSError, WSError, TimeoutError) as error:
                self.failures[type(error).__name__] += 1
                if member.transport is None:
                    self.reconnect_later(member)
            finally:
                self.connecting -= 1

    def _connected(self, source: str) -> Callable[[WSParsedURL], Awaitable[socket.socket]]:
        """A socket factory that connects itself, within `CONNECT_TIMEOUT`, and closes
        the socket when it cannot (a SYN the kernel keeps retrying, a full backlog):
        neither a connect that hangs nor a leaked descriptor."""
        make = socket_for(source)

        async def connect(url: WSParsedURL) -> socket.socket:
            sock = make(url)
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await self.loop.sock_connect(sock, (url.host, url.port))
            except BaseException:
                sock.close()
                raise
            return sock

        return connect

    def reconnect_later(self, member: Member) -> None:
        """Connect ``member`` again after phoenix.js's backoff (one attempt at a time)."""
        if self.closing or member.pending:
            return
        member.pending = True
        member.tries += 1
        self.reconnects += 1
        self.loop.call_later(backoff(member.tries), self._spawn_connect, member)

    def states(self) -> str:
        """How many members are in which state, and the failures so far (for errors)."""
        down = sum(m.transport is None for m in self.members)
        pending = sum(m.pending for m in self.members)
        unjoined = sum(m.transport is not None and not m.joined for m in self.members)
        tries = Counter(m.tries for m in self.members if m.transport is None)
        return (
            f"{down} not connected ({pending} waiting to reconnect; tries {dict(tries)}), {unjoined} connected "
            f"but not joined; failures {dict(self.failures)}; {self.attempts} attempts, {self.connecting} connecting"
        )

    def _spawn_connect(self, member: Member) -> None:
        if not self.closing:
            self.loop.create_task(self.connect(member))

    def member_joined(self, member: Member) -> None:
        self.joined += 1
        self.on_node[member.node] += 1
        self.last_join = member.joined_at or time.monotonic()
        self.join_times.append(self.last_join)
        self.changed.set()

    def received_seq(self, member: Member, seq: int) -> None:
        self.seqs[member.index][seq] += 1

    def member_lost(self, member: Member) -> None:
        self.joined -= 1
        self.on_node[member.node] -= 1

    def fail(self, error: BaseException) -> None:
        if self.failure is None:
            self.failure = error
        self.changed.set()

    def delivered(self, ts: float) -> None:
        self.samples.append(time.monotonic() - ts)
        self.changed.set()

    async def until(self, condition: Any, timeout: float, what: str) -> None:
        """Wait until ``condition()`` (checked whenever a count changes)."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    if self.failure is not None:
                        raise self.failure
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise LoadgenError(f"timed out after {timeout} s {what}") from None

    async def heartbeats(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            for member in self.members:
                member.heartbeat()
            for control in self.controls.values():
                control.heartbeat()

    # -- control connections ------------------------------------------------------------

    async def control_on(self, nodes: list[str]) -> dict[str, Control]:
        """A joined control connection to each of ``nodes``."""
        self.controls = {name: c for name, c in self.controls.items() if not c.closed}
        tries = 0
        extra: list[Control] = []
        try:
            while not set(nodes) <= set(self.controls):
                tries += 1
                if tries > MAX_CONTROL_TRIES:
                    raise LoadgenError(f"no connection reached {sorted(set(nodes) - set(self.controls))}")
                _, listener = await ws_connect(Control, f"{self.url}?vsn=2.0.0&user_id=control")
                assert isinstance(listener, Control)
                name = (await listener.request("phx_join", {}))["node"]
                if name in nodes and name not in self.controls:
                    self.controls[name] = listener
                else:
                    extra.append(listener)
        finally:
            for control in extra:
                if control.transport is not None:
                    control.transport.disconnect(graceful=False)
        return {name: self.controls[name] for name in nodes}

    async def any_control(self) -> Control:
        """A joined control connection, to whichever node the kernel picks."""
        _, listener = await ws_connect(Control, f"{self.url}?vsn=2.0.0&user_id=control")
        assert isinstance(listener, Control)
        name = (await listener.request("phx_join", {}))["node"]
        self.controls.setdefault(name, listener)
        return listener

    def close(self) -> None:
        self.closing = True
        for member in self.members:
            member.close()
        for control in self.controls.values():
            if control.transport is not None:
                control.transport.disconnect(graceful=False)


# -- commands -------------------------------------------------------------------------------


async def open_members(crowd: Crowd, n: int, rooms: bool, timeout: float) -> dict[str, Any]:
    if crowd.members:
        raise LoadgenError("members are already open")
    started = time.perf_counter()
    for index in range(crowd.first, crowd.first + n):
        topic = f"scale:room:{index // ROOM_SIZE}" if rooms else "scale:all"
        member = Member(crowd, index, topic)
        crowd.members.append(member)
        crowd.loop.create_task(crowd.connect(member))
    await crowd.until(lambda: crowd.joined >= n, timeout, f"joining {n} ({crowd.joined} joined; {crowd.states()})")
    seconds = time.perf_counter() - started
    crowd.reconnects = 0
    return {"joined": crowd.joined, "seconds": round(seconds, 3), "per_s": round(n / seconds)}


async def broadcast(crowd: Crowd, count: int, interval: float, timeout: float) -> dict[str, Any]:
    alive = [c for c in crowd.controls.values() if not c.closed]
    control = alive[0] if alive else await crowd.any_control()
    start = time.monotonic()
    for seq in range(count):
        await asyncio.sleep(max(0.0, start + seq * interval - time.monotonic()))
        await control.request("broadcast", {"ts": time.monotonic()})
    return {"sent": count, "seconds": round(time.monotonic() - start, 3)}


async def collect(crowd: Crowd, count: int, timeout: float) -> dict[str, Any]:
    expect = len(crowd.members) * count
    await crowd.until(lambda: len(crowd.samples) >= expect, timeout, f"collecting {expect} deliveries")
    await asyncio.sleep(0.05)  # an extra frame would show in the count below
    if len(crowd.samples) != expect:
        raise LoadgenError(f"expected {expect} deliveries, got {len(crowd.samples)}")
    return {"ms": [round(s * 1000, 2) for s in crowd.samples], "cpu_s": round(time.process_time() - crowd.cpu, 3)}


async def summary(crowd: Crowd, rooms: int, nodes: list[str]) -> dict[str, Any]:
    controls = await crowd.control_on(nodes)
    return {name: await control.request("summary", {"rooms": rooms}) for name, control in controls.items()}


async def all_joined(crowd: Crowd, timeout: float, gone: str | None) -> dict[str, Any]:
    n = len(crowd.members)
    await crowd.until(
        lambda: crowd.joined >= n and not (gone and crowd.on_node[gone]),
        timeout,
        f"rejoining ({crowd.joined} of {n} joined, {crowd.on_node[gone or '']} on {gone}; {crowd.states()})",
    )
    return {"at": crowd.last_join, "reconnects": crowd.reconnects, "peak_joins_per_s": peak_rate(crowd.join_times)}


def peak_rate(times: list[float], window: float = 1.0) -> int:
    """The most of ``times`` within any ``window`` seconds (joins per second at the peak)."""
    times = sorted(times)
    best = first = 0
    for last, t in enumerate(times):
        while t - times[first] > window:
            first += 1
        best = max(best, last - first + 1)
    return round(best / window)


async def tick(crowd: Crowd, rooms: int, interval: float) -> dict[str, Any]:
    """Numbered broadcasts to every room, one every ``interval`` s, until `ticker_stop`.
    A request without a reply (its control connection closed: the node drained) is
    *uncertain*: it may or may not have been broadcast; the control reconnects."""
    sent: dict[int, float] = {}
    uncertain: list[int] = []
    control: Control | None = None
    seq = 0
    start = time.monotonic()
    while crowd.ticking:
        seq += 1
        await asyncio.sleep(max(0.0, start + seq * interval - time.monotonic()))
        ts = time.monotonic()
        try:
            if control is None or control.closed:
                control = await crowd.any_control()
            await control.request("broadcast_rooms", {"rooms": rooms, "seq": seq, "ts": ts})
            sent[seq] = ts
        except (LoadgenError, OSError, WSError, TimeoutError):
            uncertain.append(seq)
            sent[seq] = ts
            control = None
    return {"sent": sent, "uncertain": uncertain}


def losses(crowd: Crowd, sent: dict[int, float], uncertain: set[int], windows: dict[str, float]) -> dict[str, Any]:
    """Numbered broadcasts each member should have had and did not: one sent while it was
    joined, unless sent once its node had begun to drain (``windows``: node -> when)."""
    expected = missing = duplicates = 0
    examples: list[dict[str, Any]] = []
    now = time.monotonic()
    for member in crowd.members:
        sessions = list(crowd.sessions.get(member.index, []))
        if member.joined:
            sessions.append((member.node, member.joined_at, now))
        got = crowd.seqs.get(member.index, Counter())
        duplicates += sum(count - 1 for count in got.values() if count > 1)
        for seq, ts in sent.items():
            if seq in uncertain:
                continue
            if not any(joined <= ts < left and ts < windows.get(node, math.inf) for node, joined, left in sessions):
                continue
            expected += 1
            if seq not in got:
                missing += 1
                if len(examples) < 5:
                    examples.append({"member": member.index, "seq": seq, "ts": ts, "sessions": sessions})
    return {"expected": expected, "missing": missing, "duplicates": duplicates, "examples": examples}


async def serve(args: argparse.Namespace) -> None:
    crowd = Crowd(args.url, args.first)
    reader = asyncio.StreamReader(limit=1 << 20)
    await crowd.loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    beats = crowd.loop.create_task(crowd.heartbeats())
    try:
        while line := await reader.readline():
            command = json.loads(line)
            timeout = float(command.get("timeout", 60.0))
            try:
                match command["cmd"]:
                    case "open":
                        answer = await open_members(crowd, int(command["n"]), bool(command.get("rooms")), timeout)
                    case "arm":
                        crowd.samples, crowd.cpu, crowd.join_times = [], time.process_time(), []
                        answer = {"armed": True, "on_node": dict(crowd.on_node)}
                    case "ticker":
                        crowd.ticking = True
                        crowd.ticker = crowd.loop.create_task(
                            tick(crowd, int(command["rooms"]), float(command["interval"]))
                        )
                        answer = {"ticking": True}
                    case "ticker_stop":
                        if crowd.ticker is None:
                            raise LoadgenError("no ticker runs")
                        crowd.ticking = False
                        answer = await crowd.ticker
                        crowd.ticker = None
                    case "loss":
                        sent = {int(seq): float(ts) for seq, ts in command["sent"].items()}
                        answer = losses(crowd, sent, set(command["uncertain"]), dict(command["windows"]))
                    case "broadcast":
                        answer = await broadcast(crowd, int(command["count"]), float(command["interval"]), timeout)
                    case "collect":
                        answer = await collect(crowd, int(command["count"]), timeout)
                    case "summary":
                        answer = await summary(crowd, int(command["rooms"]), list(command["nodes"]))
                    case "joined":
                        answer = await all_joined(crowd, timeout, command.get("gone"))
                    case other:
                        raise LoadgenError(f"unknown command {other!r}")
            except (LoadgenError, OSError, WSError) as error:
                answer = {"error": f"{type(error).__name__}: {error}"}
            print(json.dumps(answer), flush=True)
    finally:
        beats.cancel()
        crowd.close()
        await asyncio.sleep(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/socket/websocket")
    parser.add_argument("--first", type=int, default=0, help="the index (user id, source address) of the first member")
    args = parser.parse_args(argv)
    if not args.url.startswith("ws://127.0.0.1:"):
        parser.error("the load generator only talks to loopback")
    uvloop.run(serve(args))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
