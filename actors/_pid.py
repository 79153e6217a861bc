"""Process identifiers and unique references.

A `Pid` names a process on a node: the node's name, the node's *creation* (an
incarnation number chosen when the node starts, so that a restarted node's pids are
never confused with its previous life's) and a serial number. Pids are immutable,
hashable, ordered and picklable, so that they can travel between nodes as Erlang
pids do.

A `Ref` is a unique reference (`make_ref()` in Erlang) used for monitors, timers and
call replies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._context import current_process


def _local_node_name() -> str | None:
    proc = current_process.get(None)
    return None if proc is None else proc.pid.node


# Not `frozen=True`: a frozen dataclass costs three times as much to build, and a
# pid is built on every spawn. Pids are immutable by contract; nothing assigns to them.
@dataclass(slots=True, unsafe_hash=True, order=True)
class Pid:
    """The identifier of a process: ``node``, ``creation`` and ``serial``.

    Printed like Erlang: ``<0.42.0>`` for a process of the node the caller runs on
    (Erlang's node index 0), ``<name@host.42.0>`` for a process of another node.
    Equality and hashing cover all three fields, so a pid of a restarted node (new
    creation) never equals a pid of its previous incarnation.
    """

    node: str
    creation: int
    serial: int
    local: Any = field(default=None, compare=False, hash=False, repr=False)
    """The runtime's record of the process, on the node that spawned it (a shortcut
    for `send`, never compared, hashed or pickled)."""

    def __repr__(self) -> str:
        where = "0" if self.node == _local_node_name() else self.node
        return f"<{where}.{self.serial}.0>"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, ...]:
        return (Pid, (self.node, self.creation, self.serial))


@dataclass(slots=True, unsafe_hash=True, order=True)
class Ref:
    """A unique reference, like Erlang's ``make_ref()``; printed ``#Ref<0.7>``.

    Hashable, ordered and picklable; immutable by contract, like `Pid`."""

    node: str
    creation: int
    serial: int

    def __repr__(self) -> str:
        where = "0" if self.node == _local_node_name() else self.node
        return f"#Ref<{where}.{self.serial}>"

    __str__ = __repr__
