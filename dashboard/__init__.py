"""alight.dashboard: a live view of every node, like Phoenix LiveDashboard or Erlang's observer.

``Endpoint(dashboard=True)`` serves ``GET /dashboard`` on every node: the nodes of the
cluster and their state, a node's supervision tree, its processes (mailbox length,
messages handled, status; sortable), channels and presence per topic, PubSub and
transport rates, slow-consumer disconnects and drops, and the watchdog's reports of
processes that blocked the loop. Clicking a process shows its `process_info` and lets
you kill it (and watch its supervisor restart it). The page is updated once a second
over alight's own channels (`DashboardChannel`), from a `Collector` process that runs on
every node and samples only while someone watches; a dashboard on one node shows any
other node of the cluster by asking that node's collector.

It can kill processes: it is an admin tool (see `Dashboard`).
"""

from .channel import DashboardChannel, DashboardSocket
from .collector import ActionResult, Collector, ProcessAction, Snapshot, TakeSnapshot, Unwatch, Watch, Watching
from .dashboard import Dashboard
from .errors import BadPid, DashboardError

__all__ = [
    "ActionResult",
    "BadPid",
    "Collector",
    "Dashboard",
    "DashboardChannel",
    "DashboardError",
    "DashboardSocket",
    "ProcessAction",
    "Snapshot",
    "TakeSnapshot",
    "Unwatch",
    "Watch",
    "Watching",
]
