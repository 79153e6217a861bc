"""The batching of presence diffs, netted so that what a client applies is what happened.

Pure: a shard records every join and leave of a presence (``phx_ref``) here as it
happens, and `DiffBatch.take` hands out the batches, each ``{topic: (joins, leaves)}``,
when the ``diff_period`` ends. Readers of a topic's presences call `DiffBatch.observe`
first.

The invariants (stated once here; `tests/unit/test_presence_diffs.py` checks them with
phoenix.js's exact ``syncState``/``syncDiff`` semantics, and the simulation of
`alight.channels.presence.simulation` checks them under faults):

1. **No ref on both sides.** No diff holds one ``phx_ref`` in both ``joins`` and
   ``leaves``: phoenix.js applies the joins, then the leaves, so such a diff removes a
   presence that is there (a replica taken for down and up again within one batch did
   that for good).
2. **Net change.** Applying a topic's diffs, in order, to the view of any client equals
   the topic's current presences, for every client whose view was taken at any moment
   (a ``presence_state`` is read from the live state, maybe in the middle of a batch)
   and that receives every diff handed out after its subscription.

How: within a batch, a join and a leave of the same ref cancel out, as they leave no
trace in the state: *unless* the topic was observed (a ``presence_state`` was read)
between them. That reader saw the intermediate state, so it needs both: the later one
then starts a new diff of the topic, handed out after the first, in the same flush.
Observations are cheap (a counter per topic), and a new diff is only cut on such a
conflict, so 10,000 joins with 10,000 reads in one period still make one diff.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DiffBatch", "Diffs", "Joins", "Leaves"]

Meta = dict[str, Any]
Joins = list[tuple[str, Meta]]
Leaves = list[tuple[str, Meta]]
Diffs = dict[str, tuple[Joins, Leaves]]
"""topic -> (joins, leaves), each a list of (key, meta) in the order they happened."""


class _Entry:
    __slots__ = ("epoch", "joined", "key", "meta")

    def __init__(self, key: str, meta: Meta, joined: bool, epoch: int) -> None:
        self.key = key
        self.meta = meta
        self.joined = joined
        self.epoch = epoch


class _Topic:
    """One topic's pending diffs: a list of ``phx_ref -> entry`` maps, handed out in
    order; only the last one takes new changes."""

    __slots__ = ("diffs", "epoch")

    def __init__(self) -> None:
        self.diffs: list[dict[str, _Entry]] = [{}]
        self.epoch = 0


class DiffBatch:
    """The joins and leaves not yet handed out, netted per ``phx_ref`` (module docstring)."""

    __slots__ = ("_topics",)

    def __init__(self) -> None:
        self._topics: dict[str, _Topic] = {}

    def __bool__(self) -> bool:
        return bool(self._topics)

    def __contains__(self, topic: str) -> bool:
        return topic in self._topics

    def observe(self, topic: str) -> None:
        """Someone reads ``topic``'s presences now (a ``presence_state``): changes from
        now on do not cancel changes from before."""
        pending = self._topics.get(topic)
        if pending is not None:
            pending.epoch += 1

    def join(self, topic: str, key: str, meta: Meta) -> None:
        """The presence ``meta`` (with its ``phx_ref``) joined ``topic`` under ``key``."""
        self._record(topic, key, meta, True)

    def leave(self, topic: str, key: str, meta: Meta) -> None:
        """The presence ``meta`` left ``topic``."""
        self._record(topic, key, meta, False)

    def _record(self, topic: str, key: str, meta: Meta, joined: bool) -> None:
        pending = self._topics.get(topic)
        if pending is None:
            pending = self._topics[topic] = _Topic()
        ref = meta["phx_ref"]
        current = pending.diffs[-1]
        entry = current.get(ref)
        if entry is None:
            current[ref] = _Entry(key, meta, joined, pending.epoch)
        elif entry.joined == joined:
            return  # the same change twice (a duplicated delta): once is enough
        elif entry.epoch == pending.epoch:
            del current[ref]  # a join and a leave nobody saw in between: no change
        else:
            # Somebody saw the state between the two: both must reach the clients, in
            # two diffs (one diff holding the ref on both sides would remove it).
            pending.diffs.append({ref: _Entry(key, meta, joined, pending.epoch)})

    def take(self) -> list[Diffs]:
        """Hand out everything pending, as batches to apply in order (the first holds
        every topic's first diff, the next the topics that had a second, ...); the
        batch is then empty. Topics whose changes cancelled out are left out."""
        rounds: list[Diffs] = []
        for topic, pending in self._topics.items():
            number = 0
            for entries in pending.diffs:
                if not entries:
                    continue
                if number == len(rounds):
                    rounds.append({})
                joins: Joins = []
                leaves: Leaves = []
                for entry in entries.values():
                    (joins if entry.joined else leaves).append((entry.key, entry.meta))
                rounds[number][topic] = (joins, leaves)
                number += 1
        self._topics = {}
        return rounds
