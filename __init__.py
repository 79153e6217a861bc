"""alight: Phoenix Channels for Python, on a BEAM-like actor runtime.

The runtime lives in `alight.actors`; channels, transports and the cluster arrive in
`alight.channels`, `alight.transports` and `alight.cluster`.
"""

from .actors import (
    ChildSpec,
    DynamicSupervisor,
    GenServer,
    Node,
    Pid,
    Supervisor,
    call,
    cast,
    receive,
    self_pid,
    send,
    spawn,
    spawn_link,
)

__version__ = "0.1.0"

__all__ = [
    "ChildSpec",
    "DynamicSupervisor",
    "GenServer",
    "Node",
    "Pid",
    "Supervisor",
    "__version__",
    "call",
    "cast",
    "receive",
    "self_pid",
    "send",
    "spawn",
    "spawn_link",
]
