"""The runtime's low-level names, for the packages built on it (channels, transports,
cluster) and for libraries of your own (in the spirit of ``trio.lowlevel``).

Application code rarely needs them: `alight.actors` has the process API (``spawn``,
``send``, ``receive``, ``self_pid``). These are the objects behind it:

- `Process`: a running process (its mailbox, pid, node), what `current_process`
  returns. Its ``put`` enqueues a message without a send's lookups (the hot path of
  transports), and ``receive`` is the selective receive.
- `current_process`: the process whose code is running now; raises `NotInProcess`
  outside one. `current_process_or_none` returns None instead.
- `RestartIntensity`: the pure restart-intensity window a `Supervisor` uses (and the
  cluster launcher, for OS processes).
"""

from __future__ import annotations

from ._api import _me as current_process
from ._context import current_process as _current
from ._intensity import RestartIntensity
from ._process import Process


def current_process_or_none() -> Process | None:
    """The current process, or None outside any process (a plain task, a callback)."""
    return _current.get(None)


__all__ = ["Process", "RestartIntensity", "current_process", "current_process_or_none"]
