"""Distribution: the node's link to the other nodes of its cluster (Erlang distribution).

``dist = Distribution(node, seeds=[...]); await dist.start()`` binds the node's cluster
address (``tcp://127.0.0.1:<random>`` by default), installs itself as the node's
``remote`` hook and says `Hello` to each seed. Each `Hello` lists the members its
sender knows, and a node connects to every member it does not know: the cluster is a
full mesh. From then on, for pids of other nodes:

- ``send(pid, msg)`` and ``send((name, node), msg)`` travel in order per pair of nodes
  (queued per peer, one frame per loop turn, `_link`); a message to a node that is not
  connected, or to a pid of a previous incarnation of it, is dropped, as in Erlang;
- ``link``, ``monitor``, ``exit`` work across nodes; when a node goes down, every local
  process linked to or monitoring one of its processes gets ``noconnection``;
- `monitor_node` / `monitor_nodes` deliver `Nodeup` / `Nodedown`; `nodes` lists peers;
- `spawn_on` starts a function (carried by cloudpickle) on another node.

``await dist.joined()`` then waits (bounded) until the seeds and the peers learnt from
them are up: announce the node ready after it (``alight node`` does), and what it sends
from then on reaches them, as what they send reaches it.

One link per peer and direction: a node's DEALER to a peer is the only one it sends
on; the seed link that carried its first `Hello` becomes the peer's link when the peer
is learnt from another member's list, rather than a second link. (A second link from
the same incarnation reads, over there, as a new session: the receiver would declare
the sender down and up again, and, the sender still sending on the link it kept,
drop its frames until a heartbeat timeout, 3 s.)

Incarnations: a peer is known by name *and* creation (`Node.creation`, microseconds
since the epoch). A restarted node (same name, new creation) is a new peer: its first
`Hello` declares its old life down at once (links and monitors get ``noconnection``,
watchers `Nodedown`), before any heartbeat timeout, even if the old process still
holds its connections (paused); a `Hello` or frame of an older creation, read late, is
dropped. A link still connecting to an address the peer no longer has (learnt from a
stale member list) is replaced by one to the address its `Hello` gives.

Failure detection, two ways, one outcome (`PeerDown`: links closed, ``noconnection``
to linked and monitoring processes, `Nodedown` to watchers, and the ``node_down``
telemetry event with the reason; a peer that comes up emits ``node_up``, see
`alight.telemetry`):

- the connection's own disconnect events: the DEALER to each peer has a ZeroMQ socket
  monitor (`_link`), and when the TCP connection of a peer that is up drops, that peer
  is declared down once this node has read what it had already received
  (`DISCONNECT_GRACE`, at most a few tens of milliseconds on an idle node: the last
  frames a peer sent travel on its own connection and must not be overtaken). A
  SIGKILLed node's sockets are closed by its kernel at once, so it is down everywhere
  within about 0.1 s, and a node that stops (`stop`) is down at once too. Only a connection
  that completed its handshake counts: a peer with another secret, or one not
  listening yet, never comes up and never flaps; ZeroMQ's automatic reconnect of a
  dropped link is moot, as the link is closed when its peer is declared down;
- heartbeats, for what keeps its connection (a paused, hung or partitioned node):
  every `heartbeat_interval` (0.5 s) a `Heartbeat` goes to each peer; a peer from
  which nothing (heartbeat or any frame) arrived for `down_after` (3 s) is declared
  down. Silence is measured up to the last time this node had read every frame waiting
  for it (`Mesh.caught_up_at`): a node busy draining a backlog does not blame its peers
  for its own delay, and since it reads in bounded slices (`_link.RECV_BUDGET`) its
  timers keep running and its own heartbeats keep going out. Such a node is down
  everywhere within ``down_after + heartbeat_interval`` (< 5 s by default). The
  trade-off: a pause longer than ``down_after`` (SIGSTOP, swapping, a long GC) is a
  failure; raise ``down_after`` to tolerate longer pauses, at the cost of slower
  detection.

Rejoin after a pause (decided): a paused node is treated as down, then as a node that
comes back with the same creation but *fresh link state*: links and monitors that
crossed to it fired ``noconnection`` and are not restored, and messages sent while it
was down were dropped. Each DEALER carries a random session in its routing id; a frame
from a peer on a link we did not accept (its old link, after we declared it down)
makes us say `Hello` on a new link, and a `Hello` on a new link from a peer we think is
up makes us declare its old life down first. Both sides thus see the same
down-then-up, whichever noticed first.

The decisions above (the peer table, one link per peer, incarnations, both failure
detectors, `joined`) are `_membership.Membership`, a pure state machine; `Distribution`
feeds it what its sockets and timers report and performs the effects it returns
(links opened and closed, heartbeats, `Nodeup`/`Nodedown`, ``noconnection``,
telemetry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..actors import NOCONNECTION, NOPROC, Node, Pid, Ref, current_node, receive, self_pid
from ..actors import Down as ActorDown
from ..actors.errors import ActorError, UnknownName
from ..actors.messages import Reason
from ..telemetry import NODE_DOWN, NODE_UP, Event
from ._codec import (
    ClusterMessage,
    Demonitor,
    Down,
    Exit,
    Forward,
    Heartbeat,
    Hello,
    Link,
    Monitor,
    PubSubForward,
    Send,
    Spawn,
    SpawnReply,
    Unlink,
    dump_function,
    load_function,
)
from ._keys import ClusterKeys, derive_secret, fingerprint, load_keys
from ._link import MAX_PENDING, Identity, LinkStatistics, Mesh, Outlink
from ._membership import (
    CONNECTION_LOST,
    HEARTBEAT_TIMEOUT,
    CheckLater,
    Close,
    Connect,
    Effect,
    Membership,
    PeerDown,
    PeerUp,
    SendHeartbeat,
)
from .address import DEFAULT_HOST, advertised, is_loopback
from .discovery import Discovery
from .endpoint import ClusterExtension
from .errors import ClusterError, ClusterFrameError, DiscoveryError, NodeDown, NotConnected

if TYPE_CHECKING:
    from ..channels.endpoint import Endpoint

log = logging.getLogger("alight.cluster")

HEARTBEAT_INTERVAL = 0.5
"""Default seconds between heartbeats to each peer."""
DOWN_AFTER = 3.0
"""Default seconds of silence after which a peer is declared down."""
DISCONNECT_GRACE = 0.02
"""Seconds between a peer's lost connection and the check that this node has read what
it had received by then (then the peer is down; else the check is repeated)."""
JOIN_TIMEOUT = 5.0
"""Default bound, in seconds, of `Distribution.joined`'s wait for the seeds."""


@dataclass(frozen=True, slots=True)
class Nodeup:
    """A node connected (Erlang's ``{nodeup, Node}``), for `monitor_nodes` subscribers."""

    node: str


@dataclass(frozen=True, slots=True)
class Nodedown:
    """A node went down or was never up (Erlang's ``{nodedown, Node}``)."""

    node: str


@dataclass(slots=True)
class DistributionStatistics:
    """`Distribution.stats`: the link counters plus membership events."""

    links: LinkStatistics
    nodes_up: int
    """Peers up now."""
    nodeups: int
    """Times a peer came up (including rejoins)."""
    nodedowns: int
    """Times a peer was declared down."""
    discovery_failures: int = 0
    """Lookups of the discovery (`alight.cluster.discovery`) that failed (logged once
    per outage; what was known is kept)."""
    unreachable: int = 0
    """Times a peer came up (it reached this node) while this node's link to the address
    it advertises did not connect within ``down_after`` (logged: a wrong
    ``--cluster-advertise``, a firewall or NAT in one direction)."""


class _Route:
    """Where the pids of a peer that is up go: its incarnation and our link to it
    (None once it is down, for a handler still holding the route)."""

    __slots__ = ("checked", "creation", "out", "since")

    def __init__(self, creation: int, out: Outlink, since: float) -> None:
        self.creation = creation
        self.out: Outlink | None = out
        self.since = since
        """When it came up (loop time)."""
        self.checked = False
        """Whether our link to it was seen connected, or reported as not connecting."""


class Distribution:
    """The node's cluster membership and remote-process routing (see the module doc).

    ``secret`` (or ``keys``) defaults to ``ALIGHT_CLUSTER_SECRET``. The cluster port
    binds on ``host`` (127.0.0.1 by default: other machines reach it only when told
    to) and ``port`` (0 picks a free one); peers are told to connect to ``advertise``
    (``HOST`` or ``HOST:PORT``, e.g. the address a container or NAT maps to this
    node; required when ``host`` is a wildcard such as ``0.0.0.0``) or else to the
    bound address: `address`, known after `start`. Besides ``seeds``, a ``discovery``
    (`alight.cluster.discovery`: ``DnsPoll("alight.svc", 4370)``) tells where the
    nodes are, when the node starts and then every interval. CurveZMQ authenticates every peer
    whatever the address. `AddressError` for an address that cannot be used.
    ``max_pending`` bounds each peer's queue (`_link`: beyond it, drop and count).
    """

    def __init__(
        self,
        node: Node,
        *,
        seeds: Iterable[str] = (),
        secret: bytes | str | None = None,
        keys: ClusterKeys | None = None,
        host: str = DEFAULT_HOST,
        port: int = 0,
        advertise: str | None = None,
        discovery: Discovery | None = None,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        down_after: float = DOWN_AFTER,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.node = node
        self.seeds = list(seeds)
        advertised(host, port or 1, advertise)  # AddressError now rather than after binding
        self.host = host
        self.port = port
        self.advertise = advertise
        self.discovery = discovery
        self.heartbeat_interval = heartbeat_interval
        self.down_after = down_after
        self.on_pubsub: Callable[[PubSubForward], None] | None = None
        """Called with each `PubSubForward` received (the cluster PubSub adapter)."""
        keys = keys if keys is not None else load_keys(secret=secret)
        self._keys = keys
        self._mesh = Mesh(
            node.name, node.creation, keys, self._on_batch, max_pending=max_pending, on_disconnect=self._on_disconnect
        )
        self._membership = Membership(node.name, down_after=down_after)
        self._up: dict[str, _Route] = {}
        """The peers up, as `Membership` says (`PeerUp`, `PeerDown`): the send path."""
        self._links: dict[int, Outlink] = {}
        """Our links, by the number `Membership` gave them (`Connect`, `Close`)."""
        self._link_ids: dict[Outlink, int] = {}
        self._received: dict[str, tuple[str, int]] = {}
        """peer -> (its DEALER session, messages received on it): its heartbeats' acks."""
        self._node_watchers: dict[str, set[Pid]] = {}
        self._all_watchers: set[Pid] = set()
        self._spawns: dict[Ref, tuple[str, Pid, bool]] = {}
        self._tick_handle: Any = None
        self._joined: asyncio.Future[None] | None = None
        self._nodeups = 0
        self._nodedowns = 0
        self._unreachable = 0
        self._discovery_failures = 0
        self._discovering: asyncio.Task[None] | None = None
        self._discovery_answered = discovery is None
        """Whether the discovery answered (or failed) once: `joined` waits for it."""

    @property
    def address(self) -> str:
        """``tcp://host:port``: what other nodes give as a seed to join this one."""
        return self._mesh.address

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Bind, become the node's ``remote`` and greet the seeds (the node must run);
        returns at once: `joined` waits for the seeds to answer."""
        loop = self.node.loop
        address = self._mesh.open(loop, self.host, self.port, self.advertise)
        if not is_loopback(self.host):
            log.info(
                "cluster: %s: cluster port bound on %s, advertised as %s (peers must hold the cluster secret)",
                self.node.name,
                self._mesh.bound,
                address,
            )
        self.node.remote = self
        self._apply(self._membership.start(self.seeds, address))
        self._tick_handle = loop.call_later(self.heartbeat_interval, self._tick)
        if self.discovery is not None:
            self._discovering = loop.create_task(self._discover(self.discovery))
            self._discovering.add_done_callback(self._discovery_ended)

    async def joined(self, timeout: float = JOIN_TIMEOUT) -> bool:
        """Wait (after `start`) until this node has joined the cluster: every seed up,
        and every peer learnt from them up or given up on. True then: what this node
        sends from now on reaches them, and what they send reaches it, so announce the
        node ready after this. False after ``timeout`` seconds (logged; a seed still
        unreachable is no error: it is retried, and joins when it answers)."""
        if self._joined is None:
            self._joined = self.node.loop.create_future()
            self._check_joined()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._joined)
        except TimeoutError:
            log.warning(
                "cluster: %s: not joined in %ss, still waiting for %s", self.node.name, timeout, self._waiting_for()
            )
            return False
        return True

    def refused_seeds(self) -> list[str]:
        """The seed addresses whose handshakes fail (the seed holds another cluster
        secret, or is not an alight node): a misconfiguration that retrying does not heal."""
        links = self._links
        return sorted(
            address
            for address, link_id in self._membership.seed_links().items()
            if (link := links.get(link_id)) is not None and link.auth_refused
        )

    def _waiting_for(self) -> str:
        """What `joined` still waits for, and for each, what is known of why."""
        parts = []
        seeds = self._membership.seed_links()
        for address in self._membership.pending():
            link_id = seeds.get(address)
            if link_id is None:  # a peer's name
                peer = self._membership.peer(address)
                link_id = peer.out if peer is not None else None
            link = self._links.get(link_id) if link_id is not None else None
            if link is not None and link.auth_refused:
                why = (
                    "its handshake failed: it holds another cluster secret, or is not an alight node; "
                    "check that ALIGHT_CLUSTER_SECRET is the same on every node"
                )
            elif link is not None and link.connected:
                why = f"connected, but no answer: it may not reach this node at {self.address} (--cluster-advertise)"
            else:
                why = "not connected: nothing listening there, unreachable, or another cluster secret"
            parts.append(f"{address} ({why})")
        return "; ".join(parts) or "nothing"

    def _check_joined(self) -> None:
        joined = self._joined
        if joined is not None and not joined.done() and self._discovery_answered and self._membership.joined:
            joined.set_result(None)

    async def stop(self) -> None:
        """Close every link (peers see their connection drop: this node is down at once)."""
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        if self._discovering is not None:
            self._discovering.cancel()
            self._discovering = None
        if self.node.remote is self:
            self.node.remote = None
        self._mesh.close()

    # -- membership ---------------------------------------------------------------

    def nodes(self) -> list[str]:
        """The names of the peers up now (Erlang's ``nodes()``), sorted."""
        return sorted(self._up)

    def known_peers(self) -> int:
        """How many other nodes this one knows of, up or not (cheap: no list is built)."""
        return self._membership.known

    def peer_states(self) -> dict[str, str]:
        """Every other node this one knows of, by name, with its state: ``"up"``,
        ``"connecting"`` or ``"down"`` (for tools such as the dashboard; `nodes` lists
        the ones up)."""
        return self._membership.states()

    def monitor_nodes(self, pid: Pid, flag: bool = True) -> None:
        """Send ``pid`` a `Nodeup`/`Nodedown` for every node that comes or goes."""
        if flag:
            self._all_watchers.add(pid)
        else:
            self._all_watchers.discard(pid)

    def monitor_node(self, pid: Pid, name: str, flag: bool = True) -> None:
        """Send ``pid`` one `Nodedown` when ``name`` goes down (at once if it is not up)."""
        if not flag:
            self._node_watchers.get(name, set()).discard(pid)
        elif name not in self._up:
            self.node.send(pid, Nodedown(name))
        else:
            self._node_watchers.setdefault(name, set()).add(pid)

    @property
    def stats(self) -> DistributionStatistics:
        """A snapshot of the counters (drops, retries, frames, membership events)."""
        return DistributionStatistics(
            self._mesh.statistics(),
            len(self._up),
            self._nodeups,
            self._nodedowns,
            discovery_failures=self._discovery_failures,
            unreachable=self._unreachable,
        )

    def endpoint_extension(self, endpoint: Endpoint) -> ClusterExtension:
        """What makes ``endpoint`` cluster-wide as it starts on this node
        (`alight.channels.extension.EndpointAttachment`; `alight.cluster.endpoint`)."""
        return ClusterExtension(self)

    @property
    def fingerprint(self) -> str:
        """The cluster's public name (`alight.cluster._keys.fingerprint`)."""
        return fingerprint(self._keys)

    def derive_secret(self, purpose: str) -> str:
        """A secret derived from the cluster secret for ``purpose`` (HMAC-SHA256), the
        same on every node: e.g. an endpoint's token key when none was configured."""
        return derive_secret(self._keys, purpose)

    # -- cluster messages to peers (PubSub, presence) ---------------------------------

    def forward_to(self, name: str, message: ClusterMessage) -> bool:
        """Queue ``message`` (`PubSubForward`, `Forward`) for node ``name``; False (dropped,
        as any message to a node that is not up) if it is not connected."""
        peer = self._up.get(name)
        if peer is None or peer.out is None:
            return False
        self._mesh.push(peer.out, message)
        return True

    def forward_all(self, message: ClusterMessage) -> int:
        """Queue ``message`` once for every node up now; the number of nodes."""
        sent = 0
        push = self._mesh.push
        for peer in self._up.values():
            if peer.out is not None:
                push(peer.out, message)
                sent += 1
        return sent

    # -- performing what `Membership` decides ---------------------------------------

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            match effect:
                case Connect(link, address, members):
                    out = self._mesh.connect(address)
                    self._links[link] = out
                    self._link_ids[out] = link
                    self._mesh.push(out, Hello(self.node.name, self.node.creation, self.address, members))
                case Close(link):
                    out = self._links.pop(link)
                    del self._link_ids[out]
                    self._mesh.close_link(out)
                case SendHeartbeat(link, seq):
                    self._mesh.push(self._links[link], self._heartbeat(link, seq))
                case PeerUp():
                    self._node_up(effect)
                case PeerDown():
                    self._node_down(effect)
                case CheckLater():
                    self.node.loop.call_later(DISCONNECT_GRACE, self._read_check, effect)

    def _tick(self) -> None:
        loop = self.node.loop
        # Silence counts only up to what we have read: frames waiting unread (this node
        # was busy) may hold the peer's heartbeats.
        self._apply(self._membership.tick(loop.time(), self._mesh.caught_up_at()))
        self._check_joined()
        self._check_reachable(loop.time())
        self._tick_handle = loop.call_later(self.heartbeat_interval, self._tick)

    async def _discover(self, discovery: Discovery) -> None:
        """Ask ``discovery`` for the cluster's addresses now and every interval; feed
        each answer to the membership. A failed lookup is logged (once per outage) and
        counted, and what was known is kept."""
        known: frozenset[str] = frozenset()
        failing = False
        while True:
            try:
                found = await discovery.addresses()
            except DiscoveryError as error:
                self._discovery_failures += 1
                if not failing:
                    log.warning(
                        "cluster: %s: discovery %s: %s (keeping the %d addresses known, retrying every %ss)",
                        self.node.name,
                        discovery.describe(),
                        error,
                        len(known),
                        discovery.interval,
                    )
                failing = True
            else:
                if failing or found != known:
                    log.info(
                        "cluster: %s: discovery %s: %s",
                        self.node.name,
                        discovery.describe(),
                        ", ".join(sorted(found)),
                    )
                failing, known = False, found
                self._apply(self._membership.discovered(found, self.node.loop.time()))
            if not self._discovery_answered:
                self._discovery_answered = True
                self._check_joined()
            if discovery.interval is None:
                return
            await asyncio.sleep(discovery.interval)

    def _discovery_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:  # a bug: said, not lost
            log.error("cluster: %s: discovery stopped", self.node.name, exc_info=task.exception())

    def _check_reachable(self, now: float) -> None:
        """Say so, once per incarnation, of a peer that reached this node but that this
        node cannot reach at the address it advertises: what it sends arrives, what this
        node sends waits in its queue, and the peer soon takes this node for dead (or,
        having sent nothing but its `Hello`, is taken for dead: see `_node_down`)."""
        for name, route in self._up.items():
            out = route.out
            if route.checked or out is None:
                continue
            if out.connected:
                route.checked = True
            elif now - route.since > self.down_after / 2:
                self._report_unreachable(name, route, out, now)

    def _report_unreachable(self, name: str, route: _Route, out: Outlink, now: float) -> None:
        route.checked = True
        self._unreachable += 1
        log.warning(
            "cluster: %s: node %s reached this node, but this node's link to the address it "
            "advertises, %s, has not connected in %.1f s: is that address one this node can "
            "reach (its --cluster-advertise, a firewall, NAT)?",
            self.node.name,
            name,
            out.address,
            now - route.since,
        )

    def _on_disconnect(self, link: Outlink) -> None:
        # The established connection of ``link`` dropped (`Mesh` calls this once per loss).
        link_id = self._link_ids.get(link)
        if link_id is not None:
            self._apply(self._membership.connection_dropped(link_id, self.node.loop.time()))

    def _read_check(self, check: CheckLater) -> None:
        self._apply(self._membership.read_check(check, self._mesh.caught_up_at()))

    def _membership_event(self, event: Event, peer: str, reason: str) -> None:
        telemetry = self.node.telemetry
        if telemetry.has_handlers(event):
            metadata = {"node": self.node.name, "peer": peer, "reason": reason}
            telemetry.execute(event, {"nodes_up": len(self._up)}, metadata)

    def _node_up(self, up: PeerUp) -> None:
        name = up.name
        self._up[name] = _Route(up.creation, self._links[up.link], self.node.loop.time())
        self._nodeups += 1
        log.info("cluster: %s: node %s is up (%s)", self.node.name, name, up.address)
        self._membership_event(NODE_UP, name, up.reason)
        for pid in list(self._all_watchers):
            self.node.send(pid, Nodeup(name))

    def _node_down(self, down: PeerDown) -> None:
        """``down.name`` is down (`Membership` closed its link just before): fire
        ``noconnection`` everywhere. ``down.reason`` (``"connection_lost"``,
        ``"heartbeat_timeout"``, ``"restarted"``) goes to the `NODE_DOWN` telemetry event."""
        name = down.name
        if down.reason == HEARTBEAT_TIMEOUT:
            log.warning("cluster: %s: no word from %s for %.1fs", self.node.name, name, down.silence)
        elif down.reason == CONNECTION_LOST:
            log.warning("cluster: %s: connection to %s lost", self.node.name, name)
        route = self._up.pop(name, None)
        if route is not None:
            out, route.out = route.out, None
            now = self.node.loop.time()
            if (
                out is not None
                and not out.connected
                and not route.checked
                and now - route.since > self.heartbeat_interval
            ):
                self._report_unreachable(name, route, out, now)
        self._nodedowns += 1
        log.warning("cluster: %s: node %s is down", self.node.name, name)
        self._membership_event(NODE_DOWN, name, down.reason)
        node = self.node
        for proc in node.processes():
            for other in proc.links:
                if other.node == name:
                    node.link_exited(proc.pid, other, NOCONNECTION)
            for ref, target in proc.monitors.items():
                if target.node == name and proc.pop_monitor(ref) is not None:
                    proc.put(ActorDown(ref, target, NOCONNECTION))
            for ref, watcher in proc.monitored_by.items():
                if watcher.node == name:
                    proc.pop_monitored_by(ref)
        for ref, (target_node, caller, _link) in list(self._spawns.items()):
            if target_node == name:
                node.send(caller, SpawnReply(ref, None, NOCONNECTION))
        for pid in self._node_watchers.pop(name, set()) | self._all_watchers:
            node.send(pid, Nodedown(name))

    # -- incoming -----------------------------------------------------------------

    def _on_batch(self, identity: Identity, messages: list[ClusterMessage]) -> None:
        membership = self._membership
        now = self.node.loop.time()
        if membership.heard(identity, now):
            route = self._up[identity.name]
            self._count_received(identity, len(messages))
            on_pubsub = self.on_pubsub
            for message in messages:
                # Broadcasts are most of the traffic: skip the dispatch for them.
                if type(message) is PubSubForward and on_pubsub is not None:
                    on_pubsub(message)
                else:
                    self._handle(route, message)
            return
        for index, message in enumerate(messages):
            if type(message) is Hello:
                accepted, effects = membership.hello(identity, message, now)
                self._apply(effects)
                self._check_joined()
                if accepted:
                    route = self._up[message.node]
                    self._count_received(identity, len(messages))
                    for rest in messages[index + 1 :]:
                        self._handle(route, rest)
                return
        # A frame on a link we did not accept: the peer's old link after we declared it
        # down. It is alive: say Hello on a new link (it will drop its old life too).
        # (Frames of a previous incarnation, read late, are dropped: it is dead.)
        self._mesh.count_stray(len(messages))
        reconnecting, effects = membership.stray_frame(identity, now)
        if reconnecting:
            log.info("cluster: %s: node %s is back, reconnecting", self.node.name, identity.name)
            self._apply(effects)

    def _count_received(self, identity: Identity, messages: int) -> None:
        """Count what arrived on the peer's current DEALER session (for its acks)."""
        session, count = self._received.get(identity.name, ("", 0))
        if session != identity.session:
            count = 0
        self._received[identity.name] = (identity.session, count + messages)

    def _heartbeat(self, link: int, seq: int) -> Heartbeat:
        """A heartbeat for the peer of ``link``, acknowledging what it sent us."""
        out = self._links[link]
        for name, route in self._up.items():
            if route.out is out:
                session, received = self._received.get(name, ("", 0))
                return Heartbeat(seq, session, received)
        return Heartbeat(seq)

    def _handle(self, peer: _Route, message: ClusterMessage) -> None:
        node = self.node
        match message:
            case Send(dest, payload):
                with contextlib.suppress(UnknownName):  # an unknown name drops, as in Erlang
                    node.send(dest, payload)
            case Heartbeat(_, session, received):
                if peer.out is not None:
                    self._mesh.acknowledged(peer.out, session, received)
            case Link():
                self._on_link(peer, message)
            case Unlink(from_pid, to_pid):
                target = node.lookup(to_pid)
                if target is not None:
                    target.remove_link(from_pid)
            case Exit():
                self._on_exit(message)
            case Monitor():
                self._on_monitor(peer, message)
            case Demonitor(ref, _watcher, target_pid):
                demonitored = self._local(target_pid)
                if demonitored is not None:
                    demonitored.pop_monitored_by(ref)
            case Down():
                self._on_down(message)
            case Spawn():
                self._on_spawn(peer, message)
            case SpawnReply():
                self._on_spawn_reply(message)
            case Hello():
                self._apply(self._membership.learn(message.members, self.node.loop.time()))
            case Forward(service, payload):
                with contextlib.suppress(UnknownName):  # forwarded to a registered name
                    node.send(service, payload)
            case PubSubForward():
                if self.on_pubsub is not None:
                    self.on_pubsub(message)

    def _local(self, target: Pid | str) -> Any:
        if isinstance(target, str):
            pid = self.node.whereis(target)
            return None if pid is None else self.node.lookup(pid)
        return self.node.lookup(target)

    def _reply(self, peer: _Route, message: ClusterMessage) -> None:
        if peer.out is not None:
            self._mesh.push(peer.out, message)

    def _on_link(self, peer: _Route, message: Link) -> None:
        target = self.node.lookup(message.to_pid)
        if target is None:
            self._reply(peer, Exit(message.to_pid, message.from_pid, NOPROC))
        else:
            target.add_link(message.from_pid)

    def _on_exit(self, message: Exit) -> None:
        target = self.node.lookup(message.to_pid)
        if target is None:
            return
        if message.from_pid in target.links:  # a link fired (or its peer ended it)
            self.node.link_exited(message.to_pid, message.from_pid, message.reason)
        else:  # exit(pid, reason) from a remote process
            self.node.exit(message.from_pid, message.to_pid, message.reason)

    def _on_monitor(self, peer: _Route, message: Monitor) -> None:
        target = self._local(message.target)
        if target is None:
            self._reply(peer, Down(message.ref, message.watcher, message.target, NOPROC))
        else:
            target.add_monitored_by(message.ref, message.watcher)

    def _on_down(self, message: Down) -> None:
        watcher = self.node.lookup(message.watcher)
        if watcher is not None and watcher.pop_monitor(message.ref) is not None:
            target = message.target
            if isinstance(target, str):  # a monitor by name: Erlang reports {Name, Node}
                target = Pid(self.node.name, 0, 0)
            watcher.put(ActorDown(message.ref, target, message.reason))

    def _on_spawn(self, peer: _Route, message: Spawn) -> None:
        try:
            function = load_function(message.function)
            proc = self.node.spawn_process(function, message.args)
        except (ClusterFrameError, ActorError) as error:
            self._reply(peer, SpawnReply(message.ref, None, str(error)))
            return
        proc.label = function
        if message.link:
            proc.add_link(message.from_pid)
        if message.monitor:
            proc.add_monitored_by(message.ref, message.from_pid)
        self._reply(peer, SpawnReply(message.ref, proc.pid))

    def _on_spawn_reply(self, message: SpawnReply) -> None:
        pending = self._spawns.get(message.ref)
        if pending is None:
            return
        _node, caller, link = pending
        if link and message.pid is not None:
            proc = self.node.lookup(caller)
            if proc is not None:
                proc.add_link(message.pid)
        self.node.send(caller, message)

    # -- spawning -----------------------------------------------------------------

    async def spawn(
        self, name: str, fn: Callable[..., Any], *args: Any, link: bool = False, timeout: float = 5.0
    ) -> Pid:
        """Start ``fn(*args)`` on node ``name`` and return its pid (call from a process).

        ``fn`` travels with cloudpickle, ``args`` with pickle; with ``link`` the new
        process is linked to the caller. Raises `NotConnected` if ``name`` is not up,
        `NodeDown` if it goes down first, `ClusterError` if the function cannot be
        loaded there, `ReceiveTimeout` after ``timeout`` seconds."""
        peer = self._up.get(name)
        if peer is None or peer.out is None:
            raise NotConnected(name)
        me = self_pid()
        ref = self.node.make_ref()
        self._spawns[ref] = (name, me, link)
        try:
            self._mesh.push(peer.out, Spawn(ref, me, dump_function(fn), tuple(args), link))
            reply: SpawnReply = await receive(lambda m: type(m) is SpawnReply and m.ref == ref, timeout)
        finally:
            self._spawns.pop(ref, None)
        if reply.pid is None:
            if reply.error == NOCONNECTION:
                raise NodeDown(name)
            raise ClusterError(f"spawn on {name} failed: {reply.error}")
        return reply.pid

    # -- the node's remote hook (pids of other nodes only) ----------------------

    def _out(self, pid: Pid) -> Outlink | None:
        peer = self._up.get(pid.node)
        if peer is None or peer.creation != pid.creation:
            return None  # not connected, or a pid of a previous incarnation
        return peer.out

    def send(self, dest: Pid, message: Any) -> None:
        out = self._out(dest)
        if out is not None:
            self._mesh.push(out, Send(dest, message))

    def send_name(self, name: str, node: str, message: Any) -> None:
        peer = self._up.get(node)
        if peer is not None and peer.out is not None:
            self._mesh.push(peer.out, Send(name, message))

    def link(self, local: Pid, remote: Pid) -> bool:
        out = self._out(remote)
        if out is None:
            return False
        self._mesh.push(out, Link(local, remote))
        return True

    def unlink(self, local: Pid, remote: Pid) -> None:
        out = self._out(remote)
        if out is not None:
            self._mesh.push(out, Unlink(local, remote))

    def monitor(self, watcher: Pid, target: Pid, ref: Ref) -> bool:
        out = self._out(target)
        if out is None:
            return False
        self._mesh.push(out, Monitor(ref, watcher, target))
        return True

    def demonitor(self, watcher: Pid, target: Pid, ref: Ref) -> None:
        out = self._out(target)
        if out is not None:
            self._mesh.push(out, Demonitor(ref, watcher, target))

    def exit(self, sender: Pid | None, target: Pid, reason: Reason) -> None:
        out = self._out(target)
        if out is not None:
            self._mesh.push(out, Exit(sender if sender is not None else target, target, reason))

    def link_exited(self, sender: Pid, target: Pid, reason: Reason) -> None:
        out = self._out(target)
        if out is not None:
            self._mesh.push(out, Exit(sender, target, reason))

    def down(self, target: Pid, watcher: Pid, ref: Ref, reason: Reason) -> None:
        out = self._out(watcher)
        if out is not None:
            self._mesh.push(out, Down(ref, watcher, target, reason))


# -- the API inside a process -------------------------------------------------------


def distribution_of(node: Node) -> Distribution | None:
    """``node``'s `Distribution` when it is in a cluster, else None."""
    remote = node.remote
    return remote if isinstance(remote, Distribution) else None


def distribution() -> Distribution:
    """The current node's `Distribution`; raises `NotConnected` if it has none."""
    remote = current_node().remote
    if not isinstance(remote, Distribution):
        raise NotConnected(None)
    return remote


def nodes() -> list[str]:
    """The other nodes connected now (Erlang's ``nodes()``)."""
    return distribution().nodes()


def monitor_node(name: str, flag: bool = True) -> None:
    """Get one `Nodedown` when ``name`` goes down (Erlang's ``monitor_node/2``)."""
    distribution().monitor_node(self_pid(), name, flag)


def monitor_nodes(flag: bool = True) -> None:
    """Get `Nodeup`/`Nodedown` for every node (``net_kernel:monitor_nodes/1``)."""
    distribution().monitor_nodes(self_pid(), flag)


async def spawn_on(name: str, fn: Callable[..., Any], *args: Any, link: bool = False) -> Pid:
    """Start ``fn(*args)`` on node ``name`` (Erlang's ``spawn(Node, Fun)``); its pid."""
    return await distribution().spawn(name, fn, *args, link=link)
