"""Faults against real processes (issue 11): a nemesis, a Jepsen-like history, a verdict.

    .venv/bin/python benchmarks/faults.py --duration 300 --json    # a 5-minute soak
    .venv/bin/python benchmarks/faults.py --quick                  # what the tests run

``--nodes`` (3) reference-app nodes form a cluster (`benchmarks/_fault_node.py`); two
clients per node join one room over WebSocket (raw frames, with phoenix.js 1.8's
Presence semantics: `alight.channels.presence.simulation.PresenceView`), and each
shouts a numbered message every 0.15 s that the room broadcasts to every node. A
seeded schedule then applies one fault at a time, heals it, and waits for the views to
agree:

- SIGSTOP/SIGCONT of a node, shorter than ``down_period`` (invariant 3: no client may
  get any ``presence_diff`` for it) and longer (up to 10 s);
- SIGKILL of a node and its restart under the same name (a new incarnation);
- as root, where each node runs in its own network namespace with its own address
  (veth pairs on a bridge, made here and removed even on failure): one node cut off
  from the others (blackhole routes; clients still reach it), one direction only, and
  a degraded link (loss 5-30 %, delay 50-500 ms: ``tc netem`` with reordering where
  the kernel has it; else nftables' random drops and a ``tbf`` rate limit, and the
  report says there was no reordering).

Without root (or with ``--no-netns``) every node is on 127.0.0.1 and only the process
faults run; the report says so.

The checker keeps what every client saw and when (``--history FILE`` writes it, one
JSON object per line) and gives the verdict: after each heal, every client's view must
equal its node's tracker view and every node's view the truth (the presences of the
clients connected now) within ``--converge-timeout``; shouts arrive per sender in
order and never twice; a shout missing at a client is *counted* if its node's or the
sender's node's cluster counters account for it (``not_forwarded`` toward the
receiver's node, link drops and ``unconfirmed_at_close`` on the sender's node,
``stray_dropped`` on the receiver's), or if it was sent while either
client was disconnected or either node was killed. Figures: ``faults.converge_after_heal_p99``,
``faults.divergences``, ``faults.broadcast_loss_uncounted``, ``faults.spurious_diffs``,
``faults.sim_seeds_per_s``. With ``ALIGHT_FAULTS_DEBUG=1`` it prints the missing
broadcasts by (sender node, receiver node, receiver) and the counters that account for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from alight.benchmarks._netns import Hosts, netns_possible
from alight.benchmarks._procs import kill_group
from alight.benchmarks._report import Figure, argument_parser, emit, exit_on_sigterm
from alight.channels.presence.simulation import PresenceView, run_seed

REPO = Path(__file__).resolve().parents[1]
JS_DIR = REPO / "tests" / "js"
LIBS = ("phoenix", "alight")
"""The JavaScript clients of every node: the official phoenix.js, and alight.js."""
SECRET = "nemesis-cluster-secret-0123456789abcdef"
TOPIC = "room:nemesis"
DOWN_PERIOD = 3.0
"""The cluster tracker's ``down_period`` (`alight.cluster.presence.CLUSTER_TRACKER_SETTINGS`)."""
SHORT_PAUSE = (1.0, 2.0)
LONG_PAUSE = (4.0, 10.0)
START_TIMEOUT = 30.0
PROCESS_FAULTS = ("pause_short", "pause_long", "kill")
NETWORK_FAULTS = ("isolate", "one_way", "degrade")
"""Fault kinds (``--kinds``); the network ones need namespaces."""


def now() -> float:
    return time.monotonic()


# -- the nodes ------------------------------------------------------------------------------


class FaultNode:
    """One `_fault_node` process, restartable under its name, ports and address."""

    def __init__(self, hosts: Hosts, index: int, http_port: int, cluster_port: int, log_dir: Path) -> None:
        self.hosts = hosts
        self.index = index
        self.name = f"n{index}"
        self.host = hosts.address(index)
        self.http_port = http_port
        self.cluster_port = cluster_port
        self.log_path = log_dir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.seeds: list[str] = []
        self.killed_at: list[tuple[float, float]] = []
        """(killed, ready again) windows."""
        self.retired: list[dict[str, Any]] = []
        """The counters of each incarnation killed, read just before the kill."""

    def start(self) -> None:
        command = [
            *self.hosts.prefix(self.index),
            sys.executable, "-m", "alight.benchmarks._fault_node",
            self.name, self.host, str(self.http_port), str(self.cluster_port), *self.seeds,
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            command,
            cwd=REPO.parent,
            env={**os.environ, "ALIGHT_CLUSTER_SECRET": SECRET},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
        log.close()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        deadline = now() + timeout
        line = b""
        while b"ready" not in line:
            if now() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"node {self.name} did not start; see {self.log_path}")
            line = self.proc.stdout.readline()

    def signal(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc is not None:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.signal(signal.SIGCONT)  # a stopped node must run to stop
            kill_group(self.proc)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None

    def tracker_view(self) -> dict[str, frozenset[str]] | None:
        try:
            url = f"http://{self.host}:{self.http_port}/test/presence?topic={TOPIC}"
            with urllib.request.urlopen(url, timeout=2) as response:
                refs = json.loads(response.read())["refs"]
        except OSError:
            return None
        return {key: frozenset(values) for key, values in refs.items()}

    def counters(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.http_port}/test/counters", timeout=2) as response:
                data: dict[str, Any] = json.loads(response.read())
                return data
        except OSError:
            return {}


# -- the clients ----------------------------------------------------------------------------


@dataclass
class History:
    """What every client saw and when (Jepsen's history), in one list."""

    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **event: Any) -> None:
        event["t"] = round(now(), 4)
        with self.lock:
            self.events.append(event)


class Participant(threading.Thread):
    """A client of node ``node`` in `TOPIC` as ``user``, in a thread of its own: what
    every kind of client gives the checker."""

    lib = "raw"

    def __init__(self, user: str, node: FaultNode, history: History) -> None:
        super().__init__(daemon=True, name=user)
        self.user = user
        self.node = node
        self.history = history
        self.joined = False
        self.diffs = 0
        """``presence_diff`` messages received."""
        self.view: dict[str, frozenset[str]] | None = None
        """``key -> {phx_ref}``: what its Presence lists now."""
        self.lock = threading.Lock()

    def refs(self) -> dict[str, frozenset[str]] | None:
        """What it lists, while it is joined (None otherwise)."""
        with self.lock:
            return self.view if self.joined else None


class Client(Participant):
    """A raw WebSocket client: joins, keeps a phoenix.js Presence view (the model in
    `simulation.PresenceView`), shouts numbered messages, reconnects when its node dies."""

    def __init__(self, user: str, node: FaultNode, history: History, stop: threading.Event) -> None:
        super().__init__(user, node, history)
        self.stopping = stop
        self.model = PresenceView()
        self.connected_windows: list[list[float]] = []
        self.seq = 0
        self.received: dict[str, list[int]] = {}
        self.order_errors: list[str] = []
        self.join_count = 0
        self.shout_times: dict[str, dict[int, float]] = {}
        """sender -> seq -> when it was sent (the sender's clock is this process's)."""

    def run(self) -> None:
        rng = random.Random(self.user)
        while not self.stopping.is_set():
            try:
                self._session()
            except (OSError, ConnectionClosed, TimeoutError) as error:
                self.history.add(client=self.user, kind="disconnected", why=type(error).__name__)
            with self.lock:
                self.joined = False
                if self.connected_windows and len(self.connected_windows[-1]) == 1:
                    self.connected_windows[-1].append(now())
            self.stopping.wait(rng.uniform(0.2, 0.6))

    def _session(self) -> None:
        url = f"ws://{self.node.host}:{self.node.http_port}/socket/websocket?vsn=2.0.0&user_id={self.user}"
        with connect(url, open_timeout=2, close_timeout=1, ping_interval=None) as ws:
            self.join_count += 1
            join_ref = str(self.join_count)
            ws.send(json.dumps([join_ref, join_ref, TOPIC, "phx_join", {"device": self.user}]))
            with self.lock:
                self.model.synced = False  # phoenix.js: a new join_ref holds diffs until the state
            next_shout = now()
            while not self.stopping.is_set():
                if self.joined and now() >= next_shout:
                    self.seq += 1
                    payload = {"from": self.user, "seq": self.seq, "at": now()}
                    ws.send(json.dumps([join_ref, None, TOPIC, "shout", payload]))
                    next_shout = now() + 0.15
                try:
                    frame = json.loads(ws.recv(0.05))
                except TimeoutError:
                    continue
                self._frame(frame, join_ref)

    def _frame(self, frame: list[Any], join_ref: str) -> None:
        _, _, topic, event, payload = frame
        if topic != TOPIC:
            return
        with self.lock:
            if event == "phx_reply" and frame[1] == join_ref and payload.get("status") == "ok":
                self.joined = True
                self.connected_windows.append([now()])
                self.history.add(client=self.user, kind="joined", node=self.node.name)
            elif event == "presence_state":
                self.model.on_state(payload)
                self.history.add(client=self.user, kind="presence_state", state=_refs_json(self.model.refs()))
            elif event == "presence_diff":
                self.diffs += 1
                self.model.on_diff(payload)
                self.history.add(client=self.user, kind="presence_diff", diff=payload)
            elif event == "shout":
                sender, seq = payload["from"], payload["seq"]
                seen = self.received.setdefault(sender, [])
                if seen and seq <= seen[-1]:
                    self.order_errors.append(f"{self.user} got {sender}#{seq} after #{seen[-1]}")
                seen.append(seq)
                self.shout_times.setdefault(sender, {})[seq] = payload["at"]

    def refs(self) -> dict[str, frozenset[str]] | None:
        with self.lock:
            return self.model.refs() if self.joined and self.model.synced else None


class JsClient(Participant):
    """An official phoenix.js client, or an alight.js one (``lib="alight"``), under Node
    (`tests/js/nemesis_client.js`) of node ``node``: its Presence view is what
    ``presence.list()`` shows after every sync."""

    def __init__(self, node_bin: str, user: str, node: FaultNode, history: History, lib: str = "phoenix") -> None:
        super().__init__(user, node, history)
        self.lib = lib
        self.proc = subprocess.Popen(
            [node_bin, "nemesis_client.js", f"{node.host}:{node.http_port}", user, TOPIC, lib],
            cwd=JS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            kind = event["kind"]
            with self.lock:
                if kind == "joined":
                    self.joined = True
                elif kind == "closed":
                    self.joined = False
                elif kind == "diff":
                    self.diffs += 1
                elif kind == "view":
                    self.view = {key: frozenset(refs) for key, refs in event["refs"].items()}
            if kind != "shout":
                self.history.add(client=self.user, js=True, **event)

    def stop(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        kill_group(self.proc)


class PyClient(Participant):
    """An `alight.client` client (asyncio, in a thread of its own) of node ``node``: its
    view is what its `Presence` lists after every sync; it reconnects and rejoins by
    itself, as phoenix.js does."""

    lib = "alight.client"

    def __init__(self, user: str, node: FaultNode, history: History, stop: threading.Event) -> None:
        super().__init__(user, node, history)
        self.stopping = stop

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from alight.client import Presence, Socket
        from alight.client.channel import ChannelState

        steps = (0.1, 0.2, 0.5, 1.0)
        url = f"ws://{self.node.host}:{self.node.http_port}/socket"
        socket = Socket(url, params={"user_id": self.user}, timeout=2.0, reconnect_steps=steps, rejoin_steps=steps)
        channel = socket.channel(TOPIC, {"device": self.user})
        presence = Presence(channel)

        def synced() -> None:
            refs = {key: frozenset(m["phx_ref"] for m in p["metas"]) for key, p in presence.list(lambda k, p: (k, p))}
            with self.lock:
                self.view = refs
            self.history.add(client=self.user, lib=self.lib, kind="view", refs=_refs_json(refs))

        def diffed(message: Any) -> None:
            with self.lock:
                self.diffs += 1

        presence.on_sync(synced)
        channel.on("presence_diff", diffed)
        await socket.connect()
        with contextlib.suppress(Exception):
            await channel.join()
        while not self.stopping.is_set():
            with self.lock:
                self.joined = channel.state == ChannelState.JOINED
            await asyncio.sleep(0.02)
        with contextlib.suppress(Exception):
            await socket.disconnect()


def js_client_command() -> str | None:
    """The ``node`` binary, if Node and the phoenix package (``./dev test`` installs it) are here."""
    node_bin = shutil.which("node")
    if node_bin is None or not (JS_DIR / "node_modules" / "phoenix" / "package.json").exists():
        return None
    return node_bin


def _refs_json(refs: dict[str, frozenset[str]]) -> dict[str, list[str]]:
    return {key: sorted(values) for key, values in refs.items()}


# -- the nemesis ------------------------------------------------------------------------------


@dataclass
class Run:
    nodes: list[FaultNode]
    clients: list[Client]
    js_clients: list[Participant]
    """The clients whose Presence is a library's own: phoenix.js, alight.js, alight.client."""
    hosts: Hosts
    history: History
    rng: random.Random
    converge_timeout: float
    kinds: tuple[str, ...] = ()
    converged: list[tuple[str, float | None]] = field(default_factory=list)
    """(fault, seconds from its heal to agreement, or None if it never agreed)."""
    divergences: list[str] = field(default_factory=list)
    spurious: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)

    def diffs(self) -> int:
        """presence_diff messages received so far, by every client."""
        return sum(c.diffs for c in self.clients) + sum(c.diffs for c in self.js_clients)

    def views_agree(self) -> str | None:
        """None when every client's view equals its node's and every node's the truth;
        else what disagrees."""
        views = {node.name: node.tracker_view() for node in self.nodes}
        truth: dict[str, frozenset[str]] = {}
        for client in self.clients:
            refs = client.refs()
            if refs is None:
                return f"{client.user} is not joined"
            mine = refs.get(client.user)
            if not mine:
                return f"{client.user} does not see itself"
            truth[client.user] = mine
        for js in self.js_clients:
            refs = js.refs()
            mine = refs.get(js.user) if refs is not None else None
            if not mine:
                return f"{js.user} ({js.lib}) is not joined or does not see itself"
            truth[js.user] = mine
        for name, view in views.items():
            if view is None:
                return f"{name} does not answer"
            if view != truth:
                return f"{name} sees {_refs_json(view)}, the truth is {_refs_json(truth)}"
        everyone: list[Participant] = [*self.clients, *self.js_clients]
        for someone in everyone:
            refs = someone.refs()
            if refs != views[someone.node.name]:
                return f"{someone.user} sees {refs and _refs_json(refs)}, its node {someone.node.name} disagrees"
        return None

    def converge(self, label: str, healed_at: float) -> None:
        deadline = healed_at + self.converge_timeout
        why = self.views_agree()
        last_logged = ""
        while why is not None and now() < deadline:
            if why != last_logged:
                self.history.add(kind="disagree", fault=label, why=why)
                last_logged = why
            time.sleep(0.05)
            why = self.views_agree()
        if why is None:
            self.converged.append((label, now() - healed_at))
            self.history.add(kind="converged", fault=label, seconds=round(now() - healed_at, 3))
        else:
            self.converged.append((label, None))
            self.divergences.append(f"{label}: {why}")
            self.history.add(kind="diverged", fault=label, why=why)

    def one_fault(self) -> None:
        rng = self.rng
        node = rng.choice(self.nodes)
        kinds = [k for k in self.kinds if k in PROCESS_FAULTS or self.hosts.netns]
        kind = rng.choice(kinds)
        diffs_before = self.diffs()
        started = now()
        if kind.startswith("pause"):
            seconds = rng.uniform(*(SHORT_PAUSE if kind == "pause_short" else LONG_PAUSE))
            label = f"SIGSTOP {node.name} {seconds:.1f} s"
            self.history.add(kind="fault", fault=label)
            node.signal(signal.SIGSTOP)
            time.sleep(seconds)  # the fault's length: nothing to wait for
            node.signal(signal.SIGCONT)
        elif kind == "kill":
            label = f"SIGKILL {node.name} and restart"
            self.history.add(kind="fault", fault=label)
            node.retired.append(node.counters())
            node.kill()
            time.sleep(rng.uniform(0.2, 2.0))
            node.start()
            node.wait_ready()
            node.killed_at.append((started, now()))
        elif kind in ("isolate", "one_way"):
            seconds = rng.uniform(3.0, 8.0)
            others = [n.index for n in self.nodes if n is not node]
            pairs = [(node.index, o) for o in others]
            if kind == "isolate":
                pairs += [(o, node.index) for o in others]
            label = f"{'isolate' if kind == 'isolate' else 'cut outgoing of'} {node.name} {seconds:.1f} s"
            self.history.add(kind="fault", fault=label)
            for src, dst in pairs:
                self.hosts.cut(src, dst)
            time.sleep(seconds)
            for src, dst in pairs:
                self.hosts.heal_cut(src, dst)
        else:
            seconds = rng.uniform(3.0, 8.0)
            loss, delay = rng.randint(5, 30), rng.randint(50, 500)
            label = f"degrade {node.name} loss {loss}% delay {delay} ms {seconds:.1f} s"
            how = self.hosts.degrade(node.index, loss, delay)
            self.history.add(kind="fault", fault=label, how=how)
            time.sleep(seconds)
            self.hosts.heal_degraded(node.index)
        healed = now()
        self.faults.append(label)
        self.history.add(kind="healed", fault=label)
        self.converge(label, healed)
        if kind == "pause_short":
            # Invariant 3: a pause shorter than down_period makes no diff at all.
            during = self.diffs() - diffs_before
            if during:
                self.spurious.append(f"{label}: {during} presence_diff messages")
        self.history.add(kind="quiet")
        time.sleep(rng.uniform(0.3, 1.0))


def broadcast_loss(run: Run, before: dict[str, Any], after: dict[str, Any]) -> tuple[int, int, list[str]]:
    """(missing, uncounted, order errors) over every (sender, receiver) pair."""
    killed = [w for n in run.nodes for w in n.killed_at]
    missing_by_pair: dict[tuple[str, str, str], int] = {}
    for receiver in run.clients:
        for sender in run.clients:
            if sender is receiver:
                continue
            got = set(receiver.received.get(sender.user, []))
            times = sender_times(run, sender)
            for seq, sent_at in times.items():
                if seq in got or _excused(sent_at, receiver, sender, killed):
                    continue
                pair = (sender.node.name, receiver.node.name, receiver.user)
                missing_by_pair[pair] = missing_by_pair.get(pair, 0) + 1
                if os.environ.get("ALIGHT_FAULTS_DEBUG") == "2":
                    print(f"missing {sender.user}#{seq} at {receiver.user}, sent {sent_at:.3f}", file=sys.stderr)
    missing = sum(missing_by_pair.values())
    uncounted = 0
    by_sender_node: dict[tuple[str, str, str], int] = {}
    for (src, dst, receiver_user), count in missing_by_pair.items():
        key = (src, dst, receiver_user)
        by_sender_node[key] = by_sender_node.get(key, 0) + count
    for (src, dst, _receiver), count in by_sender_node.items():
        # What the cluster counted for one receiving node (each client there misses it):
        # not forwarded to it, dropped on the sender's links, dropped as stray on arrival.
        grown = functools.partial(_grown, run, before, after)
        counted = grown(src, "pubsub", "not_forwarded", dst)
        counted += grown(src, "link", "dropped") + grown(src, "link", "unconfirmed_at_close")
        counted += grown(dst, "link", "stray_dropped")
        uncounted += max(0, count - counted)
        if os.environ.get("ALIGHT_FAULTS_DEBUG") and count > counted:
            print(f"uncounted: {src} -> {dst} ({_receiver}): {count} missing, {counted} counted", file=sys.stderr)
    errors = [e for c in run.clients for e in c.order_errors]
    if os.environ.get("ALIGHT_FAULTS_DEBUG"):
        print("missing by (sender node, receiver node):", missing_by_pair, file=sys.stderr)
        print("counters before:", before, "\nafter:", after, file=sys.stderr)
    return missing, uncounted, errors


def _grown(run: Run, before: dict[str, Any], after: dict[str, Any], node: str, *path: str) -> int:
    """How much the counter at ``path`` of ``node`` grew over the run, across its
    incarnations (each killed one's counters were read just before the kill)."""

    def read(counters: dict[str, Any]) -> int:
        value: Any = counters
        for part in path:
            value = value.get(part, 0) if isinstance(value, dict) else 0
        return int(value)

    retired = next(n.retired for n in run.nodes if n.name == node)
    return sum(read(c) for c in retired) + read(after.get(node, {})) - read(before.get(node, {}))


def sender_times(run: Run, sender: Client) -> dict[int, float]:
    """When ``sender`` sent each of its shouts, as any receiver recorded it (a shout no
    receiver got at all is found by its number between ones that were received)."""
    times: dict[int, float] = {}
    for client in run.clients:
        times.update(client.shout_times.get(sender.user, {}))
    if not times:
        return {}
    known = sorted(times)
    for low, high in itertools.pairwise(known):
        for seq in range(low + 1, high):
            times[seq] = times[low]
    return times


def _excused(sent_at: float, receiver: Client, sender: Client, killed: list[tuple[float, float]]) -> bool:
    margin = 1.0
    for start, end in killed:
        if start - margin <= sent_at <= end + margin:
            return True
    for client in (receiver, sender):
        windows = client.connected_windows
        inside = any(w[0] + margin <= sent_at <= (w[1] if len(w) > 1 else float("inf")) - margin for w in windows)
        if not inside:
            return True
    return False


@contextlib.contextmanager
def cluster(count: int, use_netns: bool, log_dir: Path) -> Iterator[tuple[Hosts, list[FaultNode]]]:
    from alight.benchmarks._procs import free_port

    hosts = Hosts(count, use_netns)
    nodes: list[FaultNode] = []
    try:
        for index in range(count):
            http_port = 4000 if use_netns else free_port()
            cluster_port = 4370 if use_netns else free_port()
            nodes.append(FaultNode(hosts, index, http_port, cluster_port, log_dir))
        for node in nodes:
            node.seeds = [f"tcp://{other.host}:{other.cluster_port}" for other in nodes if other is not node]
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_ready()
        yield hosts, nodes
    finally:
        for node in nodes:
            with contextlib.suppress(Exception):
                node.stop()
        hosts.close()


def nemesis(
    seed: int,
    duration: float,
    count: int,
    use_netns: bool,
    converge_timeout: float,
    log_dir: Path,
    kinds: tuple[str, ...] = PROCESS_FAULTS + NETWORK_FAULTS,
) -> tuple[Run, int, int, list[str]]:
    history = History()
    stop = threading.Event()
    with cluster(count, use_netns, log_dir) as (hosts, nodes):
        clients = [Client(f"c{n.index}{k}", n, history, stop) for n in nodes for k in range(2)]
        for client in clients:
            client.start()
        node_bin = js_client_command()
        js_clients: list[Participant] = [PyClient(f"p{n.index}", n, history, stop) for n in nodes]
        if node_bin is not None:
            js_clients += [JsClient(node_bin, f"{lib[0]}{n.index}", n, history, lib) for n in nodes for lib in LIBS]
        for js in js_clients:
            js.start()
        run = Run(nodes, clients, js_clients, hosts, history, random.Random(seed), converge_timeout, kinds)
        try:
            run.converge("start", now())
            before = {n.name: n.counters() for n in nodes}
            end = now() + duration
            while now() < end:
                run.one_fault()
            time.sleep(1.0)  # the last shouts land
            after = {n.name: n.counters() for n in nodes}
        finally:
            stop.set()
            for client in clients:
                client.join(5)
            for js in js_clients:
                if isinstance(js, JsClient):
                    js.stop()
                else:
                    js.join(5)
        missing, uncounted, order = broadcast_loss(run, before, after)
    return run, missing, uncounted, order


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of faults")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--no-netns", action="store_true", help="loopback only: process faults")
    parser.add_argument("--converge-timeout", type=float, default=15.0)
    parser.add_argument("--history", type=Path, help="write the history here (JSON lines)")
    parser.add_argument("--logs", type=Path, default=Path("/tmp"))
    parser.add_argument("--sim-seconds", type=float, default=5.0, help="time spent measuring the simulation")
    parser.add_argument(
        "--kinds",
        default=",".join(PROCESS_FAULTS + NETWORK_FAULTS),
        help=f"the faults to draw from, comma-separated (of {', '.join(PROCESS_FAULTS + NETWORK_FAULTS)})",
    )
    args = parser.parse_args()
    exit_on_sigterm()
    if args.quick:
        args.duration, args.sim_seconds = min(args.duration, 20.0), 1.0
    why_not = "--no-netns" if args.no_netns else netns_possible()
    use_netns = why_not is None
    log_dir = args.logs / f"alight-faults-{os.getpid()}"
    log_dir.mkdir(parents=True, exist_ok=True)
    kinds = tuple(kind for kind in args.kinds.split(",") if kind)
    unknown = set(kinds) - set(PROCESS_FAULTS + NETWORK_FAULTS)
    if unknown or not any(k in PROCESS_FAULTS or use_netns for k in kinds):
        parser.error(f"--kinds: unknown {sorted(unknown)} or nothing that can run here")
    run, missing, uncounted, order = nemesis(
        args.seed, args.duration, args.nodes, use_netns, args.converge_timeout, log_dir, kinds
    )
    if args.history is not None:
        args.history.write_text("".join(json.dumps(e) + "\n" for e in run.history.events))
    seeds, started = 0, time.perf_counter()
    while time.perf_counter() - started < args.sim_seconds:
        run_seed(seeds)
        seeds += 1
    sim_rate = seeds / (time.perf_counter() - started)
    times = sorted(seconds for _, seconds in run.converged if seconds is not None)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))] if times else float("nan")
    detail = {
        "seed": args.seed,
        "faults": len(run.faults),
        "phoenix_js_clients": sum(1 for js in run.js_clients if js.lib == "phoenix"),
        "alight_js_clients": sum(1 for js in run.js_clients if js.lib == "alight"),
        "alight_client_clients": sum(1 for js in run.js_clients if js.lib == "alight.client"),
        "network_faults": use_netns,
        "netem": run.hosts.netem,
        "why_no_network_faults": why_not,
        "missing_broadcasts": missing,
        "order_errors": order[:5],
        "divergences": run.divergences[:5],
        "spurious": run.spurious[:5],
    }
    figures = [
        Figure("faults.converge_after_heal_p99", round(p99, 3), "s", "target", 2.0, round(p99 / 2.0, 3), "<= 2 s",
               p99 <= 2.0, detail),
        Figure("faults.divergences", len(run.divergences) + len(order), "count", "target", 0, 0, "0",
               not run.divergences and not order),
        Figure("faults.spurious_diffs", len(run.spurious), "count", "target", 0, 0, "0", not run.spurious),
        Figure("faults.broadcast_loss_uncounted", uncounted, "messages", "missing", missing, 0, "0", uncounted == 0),
        Figure("faults.sim_seeds_per_s", round(sim_rate, 1), "seeds/s", "-", 0, 0),
    ]  # fmt: skip

    def table() -> None:
        print(f"nemesis seed {args.seed}: {len(run.faults)} faults over {args.duration:.0f} s, "
              f"network faults {'on' if use_netns else 'off (' + str(why_not) + ')'}")  # fmt: skip
        for label, seconds in run.converged:
            print(f"  {label:<45} " + ("DID NOT CONVERGE" if seconds is None else f"converged in {seconds:.2f} s"))
        for figure in figures:
            print(f"{figure.bench:<36} {figure.value:>10} {figure.unit:<9} target {figure.target:<7} "
                  f"{'met' if figure.met else ('-' if figure.met is None else 'NOT MET')}")  # fmt: skip
        for problem in run.divergences + run.spurious + order:
            print(f"  ! {problem}")
        verdict = "valid" if not (run.divergences or run.spurious or order or uncounted) else "INVALID"
        print(f"verdict: {verdict}")

    emit(figures, args.json, table)
    sys.exit(0 if not (run.divergences or run.spurious or order or uncounted) else 1)


if __name__ == "__main__":
    main()
