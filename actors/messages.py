"""Messages the runtime itself delivers, and exit reasons.

Exit reasons are plain values, as in Erlang:

- ``"normal"``: the process finished; linked processes are not affected.
- ``"shutdown"`` or ``("shutdown", term)``: an orderly stop ordered by a supervisor;
  not crash-reported, but it does stop linked processes that do not trap exits.
- ``"kill"``: given to `exit(pid, "kill")`, cannot be trapped; the process dies with
  reason ``"killed"``.
- ``"noproc"``: the monitored process did not exist.
- ``"noconnection"``: the node of a linked or monitored process went down.
- anything else, most often the exception that escaped the process: a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._pid import Pid, Ref

Reason = Any
"""An exit reason: one of the constants below, ``("shutdown", term)``, or any value."""

NORMAL = "normal"
SHUTDOWN = "shutdown"
KILL = "kill"
KILLED = "killed"
NOPROC = "noproc"
NOCONNECTION = "noconnection"


def is_normal(reason: Reason) -> bool:
    """True for ``"normal"``, ``"shutdown"`` and ``("shutdown", term)``.

    These are the reasons that are not crash-reported and that a ``transient`` child
    may exit with without being restarted, as in OTP.
    """
    # Type checks first: a reason may be any value, and its ``__eq__`` is not called.
    kind = type(reason)
    if kind is str:
        return reason in (NORMAL, SHUTDOWN)
    return kind is tuple and len(reason) == 2 and type(reason[0]) is str and reason[0] == SHUTDOWN


@dataclass(frozen=True, slots=True)
class Down:
    """A monitored process ended: ``{'DOWN', Ref, process, Pid, Reason}`` in Erlang."""

    ref: Ref
    pid: Pid
    reason: Reason


@dataclass(frozen=True, slots=True)
class Exit:
    """An exit signal turned into a message because the receiver traps exits:
    ``{'EXIT', Pid, Reason}`` in Erlang."""

    pid: Pid
    reason: Reason


@dataclass(frozen=True, slots=True)
class Offloaded:
    """The outcome of `run_blocking`: ``value`` if it returned, ``error`` if it raised."""

    ref: Ref
    value: Any = None
    error: BaseException | None = None
