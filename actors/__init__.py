"""alight.actors: BEAM-like processes on asyncio.

Processes with pids and mailboxes (`spawn`, `send`, `receive`), links and exit
signals, monitors, names, timers, `GenServer`, `Supervisor` and `DynamicSupervisor`,
all owned by a `Node`. The semantics are Erlang/OTP's; the differences Python forces
are documented where they arise (exit signals are delivered as task cancellation;
a process that never awaits cannot be preempted, which the watchdog reports).
"""

from ._api import (
    Actor,
    blocking,
    cancel_timer,
    current_node,
    demonitor,
    exit,
    link,
    make_ref,
    monitor,
    receive,
    receive_nowait,
    register,
    run_blocking,
    self_pid,
    send,
    send_after,
    spawn,
    spawn_link,
    spawn_monitor,
    trap_exit,
    unlink,
    unregister,
    whereis,
)
from ._child import ChildSpec
from ._info import ProcessInfo, process_info, processes
from ._node import Node
from ._pid import Pid, Ref
from ._watchdog import BlockReport
from .dynamic_supervisor import DynamicSupervisor
from .errors import (
    ActorError,
    CallExit,
    CallTimeout,
    ExitProcess,
    Ignored,
    InvalidChildSpec,
    InvalidReturn,
    NameTaken,
    NoProc,
    NotInProcess,
    ReceiveTimeout,
    StartError,
    SupervisorError,
    UnknownName,
)
from .gen_server import From, GenServer, Ignore, NoReply, Reply, Stop, call, cast, reply
from .messages import KILL, KILLED, NOCONNECTION, NOPROC, NORMAL, SHUTDOWN, Down, Exit, Offloaded, is_normal
from .supervisor import (
    ChildCounts,
    ChildInfo,
    Supervisor,
    count_children,
    delete_child,
    restart_child,
    start_child,
    terminate_child,
    which_children,
)

__all__ = [
    "KILL", "KILLED", "NOCONNECTION", "NOPROC", "NORMAL", "SHUTDOWN",
    "Actor", "ActorError", "BlockReport", "CallExit", "CallTimeout", "ChildCounts", "ChildInfo",
    "ChildSpec", "Down", "DynamicSupervisor", "Exit", "ExitProcess", "From", "GenServer", "Ignore",
    "Ignored", "InvalidChildSpec", "InvalidReturn", "NameTaken", "NoProc", "NoReply", "Node",
    "NotInProcess", "Offloaded", "Pid", "ProcessInfo", "ReceiveTimeout", "Ref", "Reply",
    "StartError", "Stop", "Supervisor", "SupervisorError", "UnknownName",
    "blocking", "call", "cancel_timer", "cast", "count_children", "current_node", "delete_child",
    "demonitor", "exit", "is_normal", "link", "make_ref", "monitor", "process_info", "processes",
    "receive", "receive_nowait", "register", "reply", "restart_child", "run_blocking", "self_pid",
    "send", "send_after", "spawn", "spawn_link", "spawn_monitor", "start_child", "terminate_child",
    "trap_exit", "unlink", "unregister", "whereis", "which_children",
]
