"""The root of every exception alight raises: `AlightError`, and one root per package.

::

    AlightError
    ├── TelemetryError          alight.telemetry: attach/execute refused
    ├── ActorError              alight.actors: the runtime (NoProc, CallTimeout, ...)
    ├── TransportError          alight.transports: the wire (bad query string,
    │                           WebSocket protocol error, bad long-poll body)
    ├── ChannelError            alight.channels: serializers, callbacks, tokens,
    │   │                       an endpoint that is not running; presence's TrackerError
    │   └── ...
    ├── ClusterError            alight.cluster: secrets, cluster frames, links, nodes
    ├── ClientError             alight.client: the Python client
    ├── DashboardError          alight.dashboard
    └── LaunchError, AppNotFound   the command line (alight.launcher, alight.runner)

``except AlightError`` catches every failure alight reports, and nothing else. Each
package's own module (`alight.actors.errors`, `alight.channels.errors`, ...) draws
its part of the tree. Two things are deliberately outside it: exit reasons
(``"normal"``, ``"shutdown"``, a crash) are values carried by ``Down`` and ``Exit``
messages, not exceptions; and `alight.actors.ExitProcess` is the signal a process
raises on purpose to exit with a reason (Erlang's ``exit/1``), not an error.
"""

from __future__ import annotations


class AlightError(Exception):
    """Root of every exception alight raises (see the module docstring for the tree)."""


__all__ = ["AlightError"]
