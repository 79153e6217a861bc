"""Delta generations: accumulated deltas that answer a transfer request without the
full state (docs/protocol.md §7.6). Pure, like the state they summarise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ._state import DEFAULT_MAX_DELTA_SIZES, Delta, Replica, dominates, dominates_or_equal


class DeltaGenerations:
    """Accumulated deltas that answer a transfer request without the full state (docs/protocol.md §7.6).

    Generation ``i`` merges every pushed delta while the result stays contiguous and within
    ``max_sizes[i]`` (Phoenix's ``max_delta_sizes``, default 100 / 1,000 / 10,000); when it
    would overflow it restarts from the previous, smaller generation. Bounded by
    ``max(max_sizes)`` plus one delta each.
    """

    __slots__ = ("_generations", "max_sizes")

    def __init__(self, max_sizes: Sequence[int] = DEFAULT_MAX_DELTA_SIZES) -> None:
        if not max_sizes or any(size <= 0 for size in max_sizes):
            raise ValueError(f"max_sizes must be positive sizes, got {max_sizes!r}")
        self.max_sizes = tuple(max_sizes)
        self._generations: list[Delta] = []

    @property
    def generations(self) -> tuple[Delta, ...]:
        return tuple(self._generations)

    def push(self, delta: Delta) -> None:
        """Add a local or received delta to every generation it extends."""
        old = self._generations or [delta] * len(self.max_sizes)
        previous = delta
        new = []
        for generation, cap in zip(old, self.max_sizes, strict=True):
            merged = delta if generation is delta else generation.merge(delta)
            if merged is None:
                new.append(generation)
                continue
            new.append(merged if merged.size() <= cap else previous)
            previous = merged
        self._generations = new

    def clear(self) -> None:
        """Forget every generation (after a full-state transfer, Phoenix resets them)."""
        self._generations = []

    def remove_replica(self, replica: Replica) -> None:
        """Prune a permanently down replica from every generation."""
        self._generations = [g.without_replica(replica) for g in self._generations]

    def find(self, remote_context: Mapping[Replica, int]) -> Delta | None:
        """The smallest generation that brings ``remote_context`` up to date, or None.

        It must start at or before what the requester has and end beyond it (Phoenix's
        ``delta_fulfilling_clock``); the caller then `Delta.extract`s it for the requester, or
        falls back to `State.extract`.
        """
        for generation in self._generations:
            start = {r: c for r, c in generation.start.items() if r in remote_context}
            end = {r: c for r, c in generation.end.items() if r in remote_context}
            if (
                not dominates_or_equal(start, end)
                and dominates_or_equal(remote_context, start)
                and not dominates(remote_context, end)
            ):
                return generation
        return None
