"""Child specs and what supervisors share: starting a child, deciding whether it is
restarted, and shutting it down as OTP does.

`ChildSpec` is validated when it is built, so a bad spec fails where it is written,
with the field named (OTP validates every spec before starting any child).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Literal

from ._pid import Pid
from ._process import Process
from .errors import Ignored, InvalidChildSpec
from .messages import KILL, SHUTDOWN, Down, Exit, Reason, is_normal

log = logging.getLogger("alight.actors.supervisor")

Restart = Literal["permanent", "transient", "temporary"]
Shutdown = float | int | Literal["brutal_kill", "infinity"]
ChildType = Literal["worker", "supervisor"]
StartFn = Callable[[], Awaitable[Pid | None] | Pid | None]

RESTARTS = ("permanent", "transient", "temporary")
TYPES = ("worker", "supervisor")


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How a supervisor starts and stops one child (OTP's child specification).

    - ``id``: any hashable, unique among the supervisor's children.
    - ``start``: a callable returning the new child's pid (or an awaitable of it),
      linked to the caller, e.g. ``lambda: spawn_link(worker)`` or
      ``MyServer.child_spec(...)``'s; None (or `Ignored`) means "not started".
    - ``restart``: ``"permanent"`` (always restarted), ``"transient"`` (restarted
      after an abnormal exit), ``"temporary"`` (never; removed when it exits).
    - ``shutdown``: seconds to wait after the ``shutdown`` exit signal before
      killing, ``"brutal_kill"`` (killed at once) or ``"infinity"`` (the default
      for supervisors; workers default to 5 seconds).
    - ``type``: ``"worker"`` or ``"supervisor"``.
    """

    id: Hashable
    start: StartFn
    restart: Restart = "permanent"
    shutdown: Shutdown | None = None
    type: ChildType = "worker"

    def __post_init__(self) -> None:
        try:
            hash(self.id)
        except TypeError:
            raise InvalidChildSpec("id", f"must be hashable, got {self.id!r}") from None
        if not callable(self.start):
            raise InvalidChildSpec("start", f"must be a callable returning a pid, got {self.start!r}")
        if self.restart not in RESTARTS:
            raise InvalidChildSpec("restart", f"must be one of {', '.join(RESTARTS)}, got {self.restart!r}")
        if self.type not in TYPES:
            raise InvalidChildSpec("type", f"must be one of {', '.join(TYPES)}, got {self.type!r}")
        shutdown = self.shutdown
        if shutdown is None:
            object.__setattr__(self, "shutdown", "infinity" if self.type == "supervisor" else 5.0)
        elif isinstance(shutdown, bool) or not (
            shutdown in ("brutal_kill", "infinity") or (isinstance(shutdown, int | float) and shutdown >= 0)
        ):
            raise InvalidChildSpec("shutdown", f"must be seconds >= 0, 'brutal_kill' or 'infinity', got {shutdown!r}")


def check_specs(specs: list[Any]) -> list[ChildSpec]:
    """Validate a children list: every item a `ChildSpec`, ids unique."""
    seen: set[Hashable] = set()
    for index, spec in enumerate(specs):
        if not isinstance(spec, ChildSpec):
            raise InvalidChildSpec("spec", f"child {index} is not a ChildSpec: {spec!r}")
        if spec.id in seen:
            raise InvalidChildSpec("id", f"duplicate child id {spec.id!r}")
        seen.add(spec.id)
    return list(specs)


async def start_spec(spec: ChildSpec) -> Pid | None:
    """Run the spec's start function; None if the child chose not to start."""
    try:
        started = spec.start()
        if inspect.isawaitable(started):
            started = await started
    except Ignored:
        return None
    if started is not None and not isinstance(started, Pid):
        raise InvalidChildSpec("start", f"returned {started!r}, expected a Pid or None")
    return started


def should_restart(restart: Restart, reason: Reason) -> bool:
    """OTP's rule: permanent always, transient after an abnormal exit, temporary never."""
    if restart == "permanent":
        return True
    if restart == "transient":
        return not is_normal(reason)
    return False


async def shutdown_child(me: Process, pid: Pid, shutdown: Shutdown | None) -> Reason:
    """Stop a child as OTP's supervisor does; returns its exit reason.

    Unlink and monitor it (so its exit arrives as one `Down`), send ``shutdown``, wait
    up to the shutdown time, then ``kill``. ``brutal_kill`` kills at once.
    """
    node = me.node
    ref = node.monitor(me, pid)
    node.unlink(me, pid)
    # An exit that raced the unlink is now also a Down; drop the Exit message.
    me.receive_nowait(lambda m: type(m) is Exit and m.pid == pid, None)
    if shutdown == "brutal_kill":
        node.exit(me.pid, pid, KILL)
        timeout: float | None = None
    else:
        node.exit(me.pid, pid, SHUTDOWN)
        timeout = None if shutdown == "infinity" else float(shutdown)  # type: ignore[arg-type]
    down = await me.receive(lambda m: type(m) is Down and m.ref == ref, timeout, default=None)
    if down is None:
        log.warning("child %r did not stop within %s s of shutdown; killing it", pid, timeout)
        node.exit(me.pid, pid, KILL)
        down = await me.receive(lambda m: type(m) is Down and m.ref == ref)
    reason: Reason = down.reason
    return reason
