"""Reconnect and rejoin delays, with jitter (pure: the random source is injected).

phoenix.js waits 10, 50, 100, 150, 200, 250, 500, 1000, 2000 ms, then 5000 ms forever
between reconnect attempts, and 1, 2, 5, then 10 s between rejoin attempts
(docs/protocol.md §0.1). A fleet of clients that lost the same server would then all come
back on the same tick, so every step here is randomized: the delay for a step ``s`` is
drawn uniformly from ``[s * (1 - jitter), s * (1 + jitter)]`` (``jitter`` = 0.5 by
default), so the mean stays phoenix.js's step.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Final

__all__ = ["RECONNECT_STEPS", "REJOIN_STEPS", "DEFAULT_JITTER", "backoff"]

RECONNECT_STEPS: Final[tuple[float, ...]] = (0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0)
"""Seconds between socket reconnect attempts (phoenix.js ``reconnectAfterMs``); the last repeats."""
REJOIN_STEPS: Final[tuple[float, ...]] = (1.0, 2.0, 5.0, 10.0)
"""Seconds between channel rejoin attempts (phoenix.js ``rejoinAfterMs``); the last repeats."""
DEFAULT_JITTER: Final = 0.5


def backoff(
    tries: int,
    steps: Sequence[float] = RECONNECT_STEPS,
    jitter: float = DEFAULT_JITTER,
    rand: Callable[[], float] = random.random,
) -> float:
    """The delay in seconds before attempt number ``tries`` (1 for the first retry):
    ``steps[tries - 1]`` (the last step once past the end), randomized by ``jitter``.
    ``rand`` returns a float in [0, 1); inject a fixed one to get a fixed delay."""
    if tries < 1:
        raise ValueError(f"tries must be >= 1, not {tries}")
    if not 0 <= jitter <= 1:
        raise ValueError(f"jitter must be within [0, 1], not {jitter}")
    step = steps[min(tries, len(steps)) - 1]
    return step * (1 - jitter + 2 * jitter * rand())
