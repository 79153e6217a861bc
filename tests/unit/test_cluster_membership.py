"""The membership state machine of the cluster (`cluster._membership`), event by event.

Pure: no sockets, no clock. Each test feeds a `Membership` what a node's sockets and
timers would report and checks the effects it returns, in order. The real OS-process
tests in tests/cluster check that `Distribution` performs them.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alight.cluster._codec import Hello, Member
from alight.cluster._link import Identity
from alight.cluster._membership import (
    CONNECTING,
    DOWN,
    UP,
    CheckLater,
    Close,
    Connect,
    Effect,
    Membership,
    PeerDown,
    PeerUp,
    SendHeartbeat,
)

DOWN_AFTER = 3.0
A, B, C = "a@h", "b@h", "c@h"
A_ADDR, B_ADDR, C_ADDR = "tcp://127.0.0.1:1001", "tcp://127.0.0.1:1002", "tcp://127.0.0.1:1003"


def node() -> Membership:
    return Membership(A, down_after=DOWN_AFTER)


def hello(
    m: Membership, name: str, address: str, *, creation: int = 1, session: str = "s1", members: tuple[Member, ...] = ()
) -> tuple[bool, list[Effect]]:
    accepted, effects = m.hello(Identity(name, creation, session), Hello(name, creation, address, members), 0.0)
    return accepted, effects


def up(m: Membership, name: str, address: str, *, creation: int = 1, session: str = "s1", now: float = 0.0) -> int:
    """Bring ``name`` up; the link it is up on."""
    accepted, _ = m.hello(Identity(name, creation, session), Hello(name, creation, address), now)
    assert accepted
    peer = m.peer(name)
    assert peer is not None
    assert peer.state == UP
    assert peer.out is not None
    return peer.out


# -- start and seeds --------------------------------------------------------------------


def test_start_greets_each_seed_once_but_not_itself() -> None:
    m = node()
    effects = m.start([B_ADDR, A_ADDR, B_ADDR, C_ADDR], A_ADDR)
    assert effects == [Connect(1, B_ADDR, ()), Connect(2, C_ADDR, ())]
    assert m.seed_links() == {B_ADDR: 1, C_ADDR: 2}
    assert not m.joined
    assert m.pending() == [B_ADDR, C_ADDR]


def test_a_seed_that_answers_comes_up_on_its_seed_link_without_a_second_link() -> None:
    m = node()
    m.start([B_ADDR], A_ADDR)
    accepted, effects = hello(m, B, B_ADDR, creation=7)
    assert accepted
    assert effects == [PeerUp(B, 7, B_ADDR, 1)]
    assert m.seed_links() == {}
    assert m.states() == {B: UP}
    assert m.up() == [B]
    assert m.joined


def test_a_hello_from_an_unknown_node_opens_a_link_listing_the_peers_up_then_it_is_up() -> None:
    m = node()
    up(m, C, C_ADDR, creation=3)
    accepted, effects = hello(m, B, B_ADDR, creation=5)
    assert accepted
    assert effects == [Connect(2, B_ADDR, (Member(C, 3, C_ADDR),)), PeerUp(B, 5, B_ADDR, 2)]


def test_a_hello_on_the_accepted_link_again_only_learns_its_members() -> None:
    m = node()
    up(m, B, B_ADDR)
    accepted, effects = hello(m, B, B_ADDR, members=(Member(C, 1, C_ADDR),))
    assert accepted
    assert effects == [Connect(2, C_ADDR, (Member(B, 1, B_ADDR),))]
    assert m.states() == {B: UP, C: CONNECTING}


def test_hellos_and_members_naming_this_node_are_ignored() -> None:
    m = node()
    assert hello(m, A, A_ADDR) == (False, [])
    assert m.learn([Member(A, 1, A_ADDR)], 0.0) == []
    assert m.states() == {}


# -- one link per peer ------------------------------------------------------------------


def test_a_seed_link_is_reused_when_its_peer_is_learnt_from_another_members_list() -> None:
    m = node()
    m.start([B_ADDR, C_ADDR], A_ADDR)
    hello(m, B, B_ADDR)  # B lists nothing yet
    effects = m.learn([Member(C, 1, C_ADDR)], 1.0)
    assert effects == []  # no second link: the seed link already carries our Hello
    peer = m.peer(C)
    assert peer is not None
    assert peer.state == CONNECTING
    assert peer.out == 2
    assert not m.joined
    assert m.pending() == [C]
    accepted, effects = hello(m, C, C_ADDR)
    assert accepted
    assert effects == [PeerUp(C, 1, C_ADDR, 2)]
    assert m.joined


def test_a_seed_link_is_reused_when_its_peer_is_learnt_in_the_seeds_hello() -> None:
    m = node()
    m.start([B_ADDR, C_ADDR], A_ADDR)
    _, effects = hello(m, B, B_ADDR, members=(Member(C, 1, C_ADDR),))
    assert effects == [PeerUp(B, 1, B_ADDR, 1)]
    peer = m.peer(C)
    assert peer is not None
    assert peer.state == CONNECTING
    assert peer.out == 2


def test_a_peer_learnt_twice_while_connecting_keeps_its_one_link() -> None:
    m = node()
    assert m.learn([Member(C, 1, C_ADDR)], 0.0) == [Connect(1, C_ADDR, ())]
    assert m.learn([Member(C, 1, C_ADDR)], 0.5) == []
    assert m.learn([Member(C, 2, "tcp://elsewhere")], 0.5) == []  # still connecting there
    _, effects = hello(m, C, C_ADDR)
    assert effects == [PeerUp(C, 1, C_ADDR, 1)]


def test_a_link_connecting_to_a_stale_address_is_replaced_by_one_to_the_hellos() -> None:
    m = node()
    stale = "tcp://127.0.0.1:9999"
    assert m.learn([Member(C, 1, stale)], 0.0) == [Connect(1, stale, ())]
    accepted, effects = hello(m, C, C_ADDR, creation=2)
    assert accepted
    assert effects == [Close(1), Connect(2, C_ADDR, ()), PeerUp(C, 2, C_ADDR, 2)]
    peer = m.peer(C)
    assert peer is not None
    assert peer.address == C_ADDR
    assert peer.out == 2


# -- incarnations -------------------------------------------------------------------------


def test_a_hello_from_a_new_incarnation_takes_the_old_one_down_first_then_up() -> None:
    m = node()
    old_link = up(m, B, B_ADDR, creation=1, session="old")
    accepted, effects = hello(m, B, B_ADDR, creation=2, session="new")
    assert accepted
    assert effects == [
        Close(old_link),
        PeerDown(B, "restarted"),
        Connect(2, B_ADDR, ()),
        PeerUp(B, 2, B_ADDR, 2),
    ]
    peer = m.peer(B)
    assert peer is not None
    assert peer.creation == 2
    assert peer.inbound == Identity(B, 2, "new")
    assert not m.heard(Identity(B, 1, "old"), 1.0)  # frames of the old life are no longer its
    assert m.heard(Identity(B, 2, "new"), 1.0)


def test_a_restarted_node_at_a_new_address_is_reached_there() -> None:
    m = node()
    old_link = up(m, B, B_ADDR, creation=1)
    moved = "tcp://127.0.0.1:2002"
    _, effects = hello(m, B, moved, creation=2, session="s2")
    assert effects == [Close(old_link), PeerDown(B, "restarted"), Connect(2, moved, ()), PeerUp(B, 2, moved, 2)]


def test_a_late_hello_of_an_older_creation_is_dropped() -> None:
    m = node()
    link = up(m, B, B_ADDR, creation=2, session="new")
    assert hello(m, B, B_ADDR, creation=1, session="old") == (False, [])
    peer = m.peer(B)
    assert peer is not None
    assert peer.state == UP
    assert peer.creation == 2
    assert peer.out == link


def test_a_hello_on_a_new_link_of_the_same_incarnation_is_down_then_up() -> None:
    # The peer declared this node down (a pause) and said Hello on a new link.
    m = node()
    old_link = up(m, B, B_ADDR, session="s1")
    _, effects = hello(m, B, B_ADDR, session="s2")
    assert effects == [Close(old_link), PeerDown(B, "restarted"), Connect(2, B_ADDR, ()), PeerUp(B, 1, B_ADDR, 2)]


# -- heartbeats ---------------------------------------------------------------------------


def test_each_tick_sends_a_numbered_heartbeat_to_each_peer_up() -> None:
    m = node()
    b = up(m, B, B_ADDR)
    c = up(m, C, C_ADDR)
    m.learn([Member("d@h", 1, "tcp://127.0.0.1:1004")], 0.0)  # connecting: no heartbeat
    assert m.tick(0.5, 0.5) == [SendHeartbeat(b, 1), SendHeartbeat(c, 1)]
    assert m.tick(1.0, 1.0) == [SendHeartbeat(b, 2), SendHeartbeat(c, 2)]


def test_a_peer_silent_longer_than_down_after_is_down() -> None:
    m = node()
    link = up(m, B, B_ADDR, now=10.0)
    assert m.tick(13.0, 13.0) == [SendHeartbeat(link, 1)]  # exactly down_after: not yet
    assert m.heard(Identity(B, 1, "s1"), 13.5)
    assert m.tick(16.5, 16.5) == [SendHeartbeat(link, 2)]
    assert m.tick(16.6, 16.6) == [Close(link), PeerDown(B, "heartbeat_timeout", 16.6 - 13.5)]
    assert m.states() == {B: DOWN}
    assert m.up() == []
    # Down once (no second PeerDown); RETRY_AFTER later it is connected to again.
    assert m.tick(17.0, 17.0) == []
    assert m.tick(17.6, 17.6) == [Connect(2, B_ADDR, ())]
    assert m.states() == {B: CONNECTING}


def test_a_peer_that_does_not_answer_is_retried_after_each_give_up() -> None:
    m = node()
    link = up(m, B, B_ADDR, now=10.0)
    assert m.tick(13.5, 13.5) == [Close(link), PeerDown(B, "heartbeat_timeout", 13.5 - 10.0)]
    assert m.tick(14.5, 14.5) == [Connect(2, B_ADDR, ())]
    assert m.tick(17.6, 17.6) == [Close(2)]  # connecting for longer than down_after: given up
    assert m.tick(18.0, 18.0) == []
    assert m.tick(18.1, 18.1) == [Connect(3, B_ADDR, ())]


def test_silence_counts_only_up_to_what_the_node_had_read() -> None:
    m = node()
    link = up(m, B, B_ADDR, now=10.0)
    # Busy: the clock ran on, but frames waiting unread since 11.0 may hold B's heartbeats.
    assert m.tick(30.0, 11.0) == [SendHeartbeat(link, 1)]
    assert m.states() == {B: UP}


def test_a_peer_connecting_longer_than_down_after_is_given_up_on_without_an_event() -> None:
    m = node()
    m.learn([Member(C, 1, C_ADDR)], 1.0)
    assert not m.joined
    assert m.tick(4.0, 4.0) == []
    assert m.tick(4.5, 4.5) == [Close(1)]
    assert m.states() == {C: DOWN}
    assert m.joined
    # Learnt again later: a new link.
    assert m.learn([Member(C, 1, C_ADDR)], 5.0) == [Connect(2, C_ADDR, ())]


def test_an_unanswered_seed_is_never_given_up_on() -> None:
    m = node()
    m.start([B_ADDR], A_ADDR)
    assert m.tick(100.0, 100.0) == []
    assert m.pending() == [B_ADDR]
    assert not m.joined


# -- dropped connections --------------------------------------------------------------------


def test_a_dropped_connection_is_down_once_the_node_has_read_what_it_had_received() -> None:
    m = node()
    link = up(m, B, B_ADDR)
    check = CheckLater(B, link, 5.0)
    assert m.connection_dropped(link, 5.0) == [check]
    assert m.read_check(check, 4.9) == [check]  # frames still unread: its last words first
    assert m.states() == {B: UP}
    assert m.read_check(check, 5.0) == [Close(link), PeerDown(B, "connection_lost")]
    assert m.states() == {B: DOWN}
    assert m.read_check(check, 6.0) == []  # down already


def test_a_dropped_connection_of_no_peer_up_is_ignored() -> None:
    m = node()
    m.start([B_ADDR], A_ADDR)
    m.learn([Member(C, 1, C_ADDR)], 0.0)
    assert m.connection_dropped(1, 0.0) == []  # a seed link
    assert m.connection_dropped(2, 0.0) == []  # a peer connecting
    assert m.connection_dropped(99, 0.0) == []


def test_a_check_for_a_link_the_peer_no_longer_uses_is_dropped() -> None:
    m = node()
    old_link = up(m, B, B_ADDR, creation=1)
    check = CheckLater(B, old_link, 1.0)
    assert m.connection_dropped(old_link, 1.0) == [check]
    hello(m, B, B_ADDR, creation=2, session="s2")  # restarted meanwhile: up on a new link
    assert m.read_check(check, 2.0) == []
    assert m.states() == {B: UP}


# -- rejoin after a pause -----------------------------------------------------------------------


def test_down_then_up_after_a_pause() -> None:
    m = node()
    link = up(m, B, B_ADDR, session="s1")
    m.tick(10.0, 10.0)  # silent: down
    assert m.states() == {B: DOWN}
    # B resumes and sends on its old link, which we no longer accept: say Hello anew.
    assert not m.heard(Identity(B, 1, "s1"), 10.5)
    reconnecting, effects = m.stray_frame(Identity(B, 1, "s1"), 10.5)
    assert reconnecting
    assert effects == [Connect(link + 1, B_ADDR, ())]
    assert m.states() == {B: CONNECTING}
    # B declared us down too, and says Hello on a new link of its own.
    accepted, effects = m.hello(Identity(B, 1, "s2"), Hello(B, 1, B_ADDR), 10.6)
    assert accepted
    assert effects == [PeerUp(B, 1, B_ADDR, link + 1)]
    assert m.heard(Identity(B, 1, "s2"), 10.7)


def test_stray_frames_of_an_older_creation_or_a_peer_not_down_do_not_reconnect() -> None:
    m = node()
    assert m.stray_frame(Identity(B, 1, "s1"), 0.0) == (False, [])  # never heard of
    up(m, B, B_ADDR, creation=2)
    assert m.stray_frame(Identity(B, 2, "other"), 0.0) == (False, [])  # up: not a stray
    m.tick(10.0, 10.0)
    assert m.stray_frame(Identity(B, 1, "s1"), 10.0) == (False, [])  # its previous life
    m.learn([Member(C, 1, C_ADDR)], 10.0)
    assert m.stray_frame(Identity(C, 1, "s1"), 10.0) == (False, [])  # connecting already


def test_heard_is_only_the_accepted_link_of_a_peer_up() -> None:
    m = node()
    assert not m.heard(Identity(B, 1, "s1"), 0.0)
    up(m, B, B_ADDR, now=0.0)
    assert not m.heard(Identity(B, 1, "s2"), 2.0)
    assert m.heard(Identity(B, 1, "s1"), 2.0)
    peer = m.peer(B)
    assert peer is not None
    assert peer.last_seen == 2.0


# -- joined ---------------------------------------------------------------------------------------


def test_joined_waits_for_the_seeds_and_the_peers_learnt_from_them() -> None:
    m = node()
    assert m.joined  # no seeds: alone is joined
    m.start([B_ADDR], A_ADDR)
    assert not m.joined
    hello(m, B, B_ADDR, members=(Member(C, 1, C_ADDR),))
    assert not m.joined
    assert m.pending() == [C]
    hello(m, C, C_ADDR)
    assert m.joined
    assert m.pending() == []
    m.tick(10.0, 10.0)  # both silent: down, which does not unjoin
    assert m.joined


# -- any interleaving ---------------------------------------------------------------------------------

PEERS = (B, C, "d@h")
ADDRESSES = (B_ADDR, C_ADDR, "tcp://127.0.0.1:1004", "tcp://127.0.0.1:1005")

peer_index = st.integers(0, len(PEERS) - 1)
address_index = st.integers(0, len(ADDRESSES) - 1)
creation = st.integers(1, 3)
session = st.sampled_from(("s1", "s2"))
member = st.tuples(peer_index, creation, address_index)
event = st.one_of(
    st.tuples(st.just("hello"), peer_index, creation, session, address_index, st.lists(member, max_size=3)),
    st.tuples(st.just("learn"), st.lists(member, max_size=3)),
    st.tuples(st.just("heard"), peer_index, creation, session),
    st.tuples(st.just("stray"), peer_index, creation, session),
    st.tuples(st.just("tick"), st.floats(0.0, 4.0), st.booleans()),
    st.tuples(st.just("drop"), st.integers(1, 30)),
    st.tuples(st.just("check"), st.integers(0, 5), st.booleans()),
    st.tuples(st.just("discover"), st.sets(address_index, min_size=1, max_size=3)),
)


class Shell:
    """What `Distribution` keeps from the effects: open links, peers up, checks pending."""

    def __init__(self) -> None:
        self.links: dict[int, str] = {}
        self.up: dict[str, int] = {}
        self.checks: list[CheckLater] = []
        self.ups: dict[str, int] = {}
        self.downs: dict[str, int] = {}

    def apply(self, m: Membership, effects: list[Effect]) -> None:
        for effect in effects:
            match effect:
                case Connect(link, address, members):
                    assert link not in self.links
                    self.links[link] = address
                    assert [member.name for member in members] == list(self.up)  # the peers up then
                case Close(link):
                    del self.links[link]  # only a link that is open
                case PeerUp(name, _creation, _address, link):
                    assert name not in self.up  # never up twice without a down between
                    assert link in self.links
                    self.up[name] = link
                    self.ups[name] = self.ups.get(name, 0) + 1
                case PeerDown(name, _reason, _silence):
                    assert name in self.up
                    assert self.up.pop(name) not in self.links  # closed just before
                    self.downs[name] = self.downs.get(name, 0) + 1
                case CheckLater():
                    self.checks.append(effect)
                case SendHeartbeat(link, _seq):
                    assert link in self.up.values()
                case _:
                    raise AssertionError(effect)

    def check_invariants(self, m: Membership) -> None:
        seeds = m.seed_links()
        owners: dict[int, str] = {}
        for name, state in m.states().items():
            peer = m.peer(name)
            assert peer is not None
            if state == DOWN:
                assert peer.out is None
                assert peer.inbound is None
                continue
            assert peer.out is not None
            assert peer.out not in owners, "two peers on one link"
            assert peer.out not in seeds.values()
            owners[peer.out] = name
            assert self.links[peer.out] == peer.address  # the link goes where the peer is
        # One link per peer and none leaked: every open link is a peer's or an unclaimed seed's.
        assert set(self.links) == set(owners) | set(seeds.values())
        assert len(seeds) == len(set(seeds.values()))
        assert {name: link for name, link in self.up.items()} == {
            name: owner for owner, name in owners.items() if m.states()[name] == UP
        }
        assert m.up() == list(self.up)
        for name in PEERS:
            assert self.ups.get(name, 0) - self.downs.get(name, 0) == (1 if name in self.up else 0)


def members_of(raw: list[tuple[int, int, int]]) -> tuple[Member, ...]:
    return tuple(Member(PEERS[p], c, ADDRESSES[a]) for p, c, a in raw)


# -- discovery --------------------------------------------------------------------------


def test_discovered_addresses_are_greeted_as_seeds_and_no_longer_waited_for_once_gone() -> None:
    m = node()
    assert m.start([], A_ADDR) == []
    effects = m.discovered({A_ADDR, B_ADDR, C_ADDR}, 0.0)  # its own address among them
    assert [(e.address) for e in effects if isinstance(e, Connect)] == [B_ADDR, C_ADDR]
    assert not m.joined
    assert m.discovered({A_ADDR, B_ADDR, C_ADDR}, 1.0) == []  # the same answer: nothing new
    link_c = m.seed_links()[C_ADDR]
    assert m.discovered({A_ADDR, B_ADDR}, 2.0) == [Close(link_c)]
    assert m.pending() == [B_ADDR]
    hello(m, B, B_ADDR)
    assert m.joined


def test_a_peer_down_at_an_address_gone_from_discovery_is_not_retried() -> None:
    m = node()
    m.start([], A_ADDR)
    m.discovered({B_ADDR}, 0.0)
    link = up(m, B, B_ADDR)
    m.discovered({C_ADDR}, 1.0)  # b is no longer in the answer, but it is up: it stays
    assert m.states()[B] == UP
    effects = m.tick(5.0, 5.0)  # silent: down
    assert Close(link) in effects
    assert m.states()[B] == DOWN
    assert not any(isinstance(e, Connect) and e.address == B_ADDR for e in m.tick(10.0, 10.0))
    back = m.discovered({B_ADDR, C_ADDR}, 11.0)  # it is back in the answer: connected to again
    assert [e.address for e in back if isinstance(e, Connect)] == [B_ADDR]
    assert m.states()[B] == CONNECTING


def test_a_peer_connecting_to_an_address_gone_from_discovery_is_forgotten() -> None:
    m = node()
    m.start([], A_ADDR)
    m.discovered({B_ADDR}, 0.0)
    up(m, B, B_ADDR)
    m.learn([Member(C, 1, C_ADDR)], 0.0)  # b says c is at C_ADDR: connecting
    assert m.states()[C] == CONNECTING
    m.discovered({B_ADDR, C_ADDR}, 1.0)
    effects = m.discovered({B_ADDR}, 2.0)
    assert any(isinstance(e, Close) for e in effects)
    assert C not in m.states()
    assert m.joined


@settings(max_examples=300, deadline=None)
@given(seeds=st.lists(address_index, max_size=3), events=st.lists(event, max_size=60))
def test_any_interleaving_keeps_one_link_per_peer_and_alternates_up_and_down(
    seeds: list[int], events: list[tuple[Any, ...]]
) -> None:
    m = node()
    shell = Shell()
    now = 0.0
    shell.apply(m, m.start([ADDRESSES[s] for s in seeds], A_ADDR))
    shell.check_invariants(m)
    for ev in events:
        match ev:
            case ("hello", p, c, s, a, raw):
                name = PEERS[p]
                _, effects = m.hello(Identity(name, c, s), Hello(name, c, ADDRESSES[a], members_of(raw)), now)
                shell.apply(m, effects)
            case ("learn", raw):
                shell.apply(m, m.learn(members_of(raw), now))
            case ("heard", p, c, s):
                m.heard(Identity(PEERS[p], c, s), now)
            case ("stray", p, c, s):
                identity = Identity(PEERS[p], c, s)
                if not m.heard(identity, now):
                    _, effects = m.stray_frame(identity, now)
                    shell.apply(m, effects)
            case ("tick", dt, caught_up):
                now += dt
                shell.apply(m, m.tick(now, now if caught_up else now - dt))
            case ("drop", link):
                shell.apply(m, m.connection_dropped(link, now))
            case ("discover", found):
                shell.apply(m, m.discovered({ADDRESSES[a] for a in found}, now))
            case ("check", index, caught_up):
                if shell.checks:
                    check = shell.checks.pop(index % len(shell.checks))
                    shell.apply(m, m.read_check(check, now if caught_up else check.read_by - 1.0))
        shell.check_invariants(m)
        assert m.joined == (not m.seed_links() and CONNECTING not in m.states().values())
