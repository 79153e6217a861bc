"""The membership state machine of `Distribution`, pure: the peer table and its decisions.

No sockets, no timers, no clock: every call that needs the time takes ``now``, and
links are small integers this module hands out. `Distribution` (the shell) feeds a
`Membership` what happened (a `Hello` read, a member list learnt, a tick, a dropped
connection, a frame on a link it did not accept) and performs the effects that come
back, in order:

- `Connect`: open a link to an address and say `Hello` on it, listing ``members``;
- `Close`: close a link;
- `PeerUp` / `PeerDown`: a peer came up on a link / went down (tell watchers, fire
  ``noconnection``, emit telemetry);
- `SendHeartbeat`: queue a heartbeat on a peer's link;
- `CheckLater`: a peer's connection dropped; after a grace period, pass the check back
  to `Membership.read_check` with the time up to which the node had read everything.

The rules (the module doc of `distribution` tells why): one link per peer, a seed
link being reused when its peer is learnt; a peer is known by name and creation, and a
`Hello` on a new link from a peer that is up declares its old life down first, unless
it comes from an older creation (dropped); a link still connecting to an address the
peer's `Hello` does not give is replaced; silence longer than ``down_after`` (measured
up to what the node had read) is a failure, as is a connection lost once the node has
read what it had received; a peer connecting for longer than ``down_after`` is given up
on (down, no event: it never was up); a peer down for `RETRY_AFTER` is connected to
again at the next tick (a healed partition comes back without waiting for either
side's TCP retransmission backoff).

Discovery (`discovered`, each answer of `alight.cluster.discovery`): an address that
appears is greeted as a seed is; one that disappears is no longer waited for (its seed
link closes) nor retried once down (a peer connecting to it is given up on, a peer down
there is forgotten). A peer still up there stays up: it is alive and heartbeating, and
DNS lags behind a rolling restart; taking it down would drop its presences everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias

from ._codec import Hello, Member

if TYPE_CHECKING:
    from ._link import Identity

__all__ = [
    "CONNECTING",
    "DOWN",
    "UP",
    "CheckLater",
    "Close",
    "Connect",
    "Effect",
    "Membership",
    "Peer",
    "PeerDown",
    "PeerUp",
    "SendHeartbeat",
]

RETRY_AFTER: Final = 0.5
"""Seconds after a peer went down (or connecting to it was given up) before the next
tick connects to it again."""

UP: Final = "up"
CONNECTING: Final = "connecting"
DOWN: Final = "down"

CONNECTED: Final = "connected"
"""`PeerUp.reason`."""
RESTARTED: Final = "restarted"
HEARTBEAT_TIMEOUT: Final = "heartbeat_timeout"
CONNECTION_LOST: Final = "connection_lost"
"""`PeerDown.reason`s: a `Hello` on a new link (a new incarnation, or the peer declared
this node down), silence, a connection lost."""


# -- effects ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connect:
    """Open link ``link`` to ``address`` and queue on it a `Hello` listing ``members``
    (the peers up when it was decided); later effects name the link by ``link``."""

    link: int
    address: str
    members: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class Close:
    """Close link ``link`` (forget it: no later effect names it)."""

    link: int


@dataclass(frozen=True, slots=True)
class PeerUp:
    """Peer ``name`` (incarnation ``creation``, at ``address``) is up: route its pids
    to ``link``, tell the watchers, emit ``node_up`` with ``reason``."""

    name: str
    creation: int
    address: str
    link: int
    reason: str = CONNECTED


@dataclass(frozen=True, slots=True)
class PeerDown:
    """Peer ``name`` is down (its link was closed just before): fire ``noconnection``,
    tell the watchers, emit ``node_down`` with ``reason``. ``silence`` is how long it
    said nothing (for ``heartbeat_timeout``; 0 otherwise)."""

    name: str
    reason: str
    silence: float = 0.0


@dataclass(frozen=True, slots=True)
class SendHeartbeat:
    """Queue a `Heartbeat` numbered ``seq`` on link ``link`` (a peer that is up)."""

    link: int
    seq: int


@dataclass(frozen=True, slots=True)
class CheckLater:
    """The connection of ``link``, peer ``name``'s, dropped at ``read_by``: after a
    grace period, call `Membership.read_check` with this and the time up to which the
    node had read every frame waiting for it."""

    name: str
    link: int
    read_by: float


Effect: TypeAlias = Connect | Close | PeerUp | PeerDown | SendHeartbeat | CheckLater
"""What the shell performs, in the order given."""


# -- the peer table --------------------------------------------------------------------


class Peer:
    """What this node knows of another node (read it through `Membership.peer`)."""

    __slots__ = ("address", "creation", "down_since", "inbound", "last_seen", "name", "out", "since", "state")

    def __init__(self, name: str, address: str) -> None:
        self.name = name
        self.address = address
        self.creation = 0
        self.state: str = DOWN
        self.out: int | None = None
        """Our link to it (`Connect.link`)."""
        self.inbound: Identity | None = None
        """The link we accepted from it (its DEALER's identity)."""
        self.last_seen = 0.0
        """When it last said anything (while up)."""
        self.since = 0.0
        """When we started connecting to it."""
        self.down_since: float | None = None
        """When it went down or we gave up connecting (None: never down)."""

    def __repr__(self) -> str:
        return f"Peer({self.name!r}, {self.state}, creation={self.creation}, out={self.out})"


class Membership:
    """The peer table of node ``name`` and its decisions; every method returns the
    effects to perform (see the module doc). ``down_after`` is the silence, and the
    connecting time, after which a peer is given up on."""

    def __init__(self, name: str, *, down_after: float, retry_after: float = RETRY_AFTER) -> None:
        self.name = name
        self.down_after = down_after
        self.retry_after = retry_after
        self._peers: dict[str, Peer] = {}
        self._up: dict[str, Peer] = {}
        self._seed_links: dict[str, int] = {}
        self._next_link = 0
        self._seq = 0
        self._address = ""
        self._discovered: set[str] = set()
        self._gone: set[str] = set()
        """Addresses discovered once and then no longer: not retried."""

    # -- reading the table -------------------------------------------------------------

    def peer(self, name: str) -> Peer | None:
        """What is known of ``name`` (None if never heard of); read it, do not change it."""
        return self._peers.get(name)

    @property
    def known(self) -> int:
        """How many peers are known (in any state)."""
        return len(self._peers)

    def states(self) -> dict[str, str]:
        """Every known peer's state (``up``, ``connecting``, ``down``), by name, sorted."""
        return {name: peer.state for name, peer in sorted(self._peers.items())}

    def up(self) -> list[str]:
        """The names of the peers up now, in the order they came up."""
        return list(self._up)

    @property
    def joined(self) -> bool:
        """True once every seed answered and no peer is still connecting: then tell
        whoever waits in `Distribution.joined`."""
        return not self._seed_links and all(peer.state != CONNECTING for peer in self._peers.values())

    def pending(self) -> list[str]:
        """What `joined` still waits for: seed addresses, then connecting peers' names."""
        connecting = sorted(p.name for p in self._peers.values() if p.state == CONNECTING)
        return sorted(self._seed_links) + connecting

    def seed_links(self) -> dict[str, int]:
        """The seed links not yet claimed by a peer, by address."""
        return dict(self._seed_links)

    # -- events ------------------------------------------------------------------------

    def start(self, seeds: Iterable[str], address: str) -> list[Effect]:
        """Greet each seed (but ``address``, this node's own) on a link of its own."""
        self._address = address
        effects: list[Effect] = []
        for seed in seeds:
            self._greet(seed, effects)
        return effects

    def discovered(self, addresses: Iterable[str], now: float) -> list[Effect]:
        """Discovery's latest answer: the addresses of the cluster's nodes now (see the
        module doc). An empty answer is not passed here (it is a failed lookup)."""
        effects: list[Effect] = []
        current = set(addresses)
        appeared, gone = current - self._discovered, self._discovered - current
        self._discovered = current
        self._gone = (self._gone | gone) - current
        for address in sorted(appeared):
            known = [p for p in self._peers.values() if p.address == address]
            if not known:
                self._greet(address, effects)
            for peer in known:
                if peer.state == DOWN:
                    self._connect(peer, now, effects)
        for address in sorted(gone):
            link = self._seed_links.pop(address, None)
            if link is not None:
                effects.append(Close(link))
            for peer in [p for p in self._peers.values() if p.address == address]:
                if peer.state == CONNECTING:
                    self._close_out(peer, effects)
                    peer.state = DOWN
                if peer.state == DOWN:
                    del self._peers[peer.name]
        return effects

    def _greet(self, seed: str, effects: list[Effect]) -> None:
        if seed != self._address and seed not in self._seed_links:
            link = self._new_link()
            effects.append(Connect(link, seed, self._members()))
            self._seed_links[seed] = link

    def heard(self, identity: Identity, now: float) -> bool:
        """True if ``identity`` is the accepted link of a peer that is up (it was heard
        at ``now``): handle its frame. False: pass the frame's `Hello` to `hello`, or,
        without one, call `stray_frame`."""
        peer = self._peers.get(identity.name)
        if peer is not None and peer.inbound == identity and peer.state == UP:
            peer.last_seen = now
            return True
        return False

    def hello(self, identity: Identity, hello: Hello, now: float) -> tuple[bool, list[Effect]]:
        """``hello`` arrived on the link ``identity``: whether it was accepted (then the
        peer ``hello.node`` is up on it, handle the rest of the frame), and the effects."""
        effects: list[Effect] = []
        name = hello.node
        if name == self.name:
            return False, effects
        peer = self._peers.get(name)
        if peer is not None and peer.state == UP:
            if peer.inbound == identity:
                self._learn(hello.members, now, effects)
                return True, effects
            if identity.creation < peer.creation:
                return False, effects  # a late Hello of a previous incarnation: it is dead
            # A new link from a peer we think is up: it restarted (a new creation), or
            # it declared us down (a pause). Its old life ends here, as it ended there.
            self._down(peer, RESTARTED, 0.0, effects, now)
        if peer is None:
            peer = self._peers[name] = Peer(name, hello.address)
        if peer.state == CONNECTING and peer.address != hello.address:
            # Our link goes where the peer no longer is (an address of its previous
            # incarnation, learnt from a member list): it would never connect. (While
            # a peer connects, ``address`` is where its link goes: it changes only
            # when a new link is made.)
            self._close_out(peer, effects)
            peer.state = DOWN
        peer.address = hello.address
        if peer.state != CONNECTING:
            self._connect(peer, now, effects)
        assert peer.out is not None
        peer.state = UP
        peer.creation = identity.creation
        peer.inbound = identity
        peer.last_seen = now
        self._up[name] = peer
        effects.append(PeerUp(name, peer.creation, peer.address, peer.out))
        self._learn(hello.members, now, effects)
        return True, effects

    def learn(self, members: Iterable[Member], now: float) -> list[Effect]:
        """A peer that is up listed ``members``: connect to the ones that are down."""
        effects: list[Effect] = []
        self._learn(members, now, effects)
        return effects

    def stray_frame(self, identity: Identity, now: float) -> tuple[bool, list[Effect]]:
        """A frame without a `Hello` on a link we did not accept: the peer's old link
        after we declared it down. If it is that peer, alive (not an older creation,
        read late), say `Hello` on a new link: True (reconnecting), and the effects."""
        effects: list[Effect] = []
        peer = self._peers.get(identity.name)
        if peer is not None and peer.state == DOWN and peer.address and identity.creation >= peer.creation:
            self._connect(peer, now, effects)
            return True, effects
        return False, effects

    def tick(self, now: float, heard_until: float) -> list[Effect]:
        """Every heartbeat interval: a heartbeat to each peer up; down a peer silent
        for more than ``down_after`` up to ``heard_until`` (when the node had last read
        everything waiting for it); give up on a peer connecting for longer."""
        effects: list[Effect] = []
        self._seq += 1
        for peer in list(self._peers.values()):
            if peer.state == UP:
                silence = heard_until - peer.last_seen
                if silence > self.down_after:
                    self._down(peer, HEARTBEAT_TIMEOUT, silence, effects, now)
                elif peer.out is not None:
                    effects.append(SendHeartbeat(peer.out, self._seq))
            elif peer.state == CONNECTING and now - peer.since > self.down_after:
                self._close_out(peer, effects)
                peer.state = DOWN
                peer.down_since = now
            elif (
                peer.state == DOWN
                and peer.address
                and peer.address not in self._gone
                and peer.down_since is not None
                and now - peer.down_since >= self.retry_after
            ):
                # A peer that went down may be back (a partition healed, a pause
                # ended): try again, as libcluster's strategies keep connecting.
                self._connect(peer, now, effects)
        return effects

    def connection_dropped(self, link: int, now: float) -> list[Effect]:
        """The established connection of ``link`` was lost at ``now``: if it is the
        link of a peer that is up, a `CheckLater`."""
        for peer in self._up.values():
            if peer.out == link:
                return [CheckLater(peer.name, link, now)]
        return []

    def read_check(self, check: CheckLater, caught_up_at: float) -> list[Effect]:
        """The grace after ``check`` passed and the node had read everything up to
        ``caught_up_at``: the peer is down (its last frames were read), or the check
        is repeated (frames still unread), or nothing (down already, or another link)."""
        peer = self._peers.get(check.name)
        if peer is None or peer.state != UP or peer.out != check.link:
            return []
        if caught_up_at < check.read_by:  # frames still unread: its last words first
            return [check]
        effects: list[Effect] = []
        self._down(peer, CONNECTION_LOST, 0.0, effects, caught_up_at)
        return effects

    # -- the decisions -----------------------------------------------------------------

    def _new_link(self) -> int:
        self._next_link += 1
        return self._next_link

    def _members(self) -> tuple[Member, ...]:
        return tuple(Member(p.name, p.creation, p.address) for p in self._up.values())

    def _connect(self, peer: Peer, now: float, effects: list[Effect]) -> None:
        # One link per peer: a pending seed link to its address already carries our
        # Hello. A second link would look, over there, like a new session of ours.
        link = self._seed_links.pop(peer.address, None)
        if link is None:
            link = self._new_link()
            effects.append(Connect(link, peer.address, self._members()))
        peer.out = link
        peer.state = CONNECTING
        peer.since = now

    def _learn(self, members: Iterable[Member], now: float, effects: list[Effect]) -> None:
        for member in members:
            if member.name == self.name:
                continue
            peer = self._peers.get(member.name)
            if peer is None:
                peer = self._peers[member.name] = Peer(member.name, member.address)
            if peer.state == DOWN:
                peer.address = member.address
                self._connect(peer, now, effects)

    def _close_out(self, peer: Peer, effects: list[Effect]) -> None:
        if peer.out is not None:
            effects.append(Close(peer.out))
            peer.out = None

    def _down(self, peer: Peer, reason: str, silence: float, effects: list[Effect], now: float) -> None:
        self._close_out(peer, effects)
        peer.state = DOWN
        peer.down_since = now
        peer.inbound = None
        self._up.pop(peer.name, None)
        effects.append(PeerDown(peer.name, reason, silence))
