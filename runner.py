"""Run an application on a node: what ``alight run`` and ``alight node`` do.

``MODULE:APP`` names an `Endpoint` (or a callable returning one) importable from
the current directory, like uvicorn's app strings. `run_app` serves the endpoint's
tree under the node's root supervisor until SIGTERM or SIGINT, then stops it in
order. `run_node` does the same on a cluster node: the root supervisor starts the
node's `Distribution` first (as OTP's ``kernel`` starts ``net_kernel`` before any
application), then the endpoint, which finds the distribution on its node and makes
its PubSub, presence and long-poll cluster-wide (`alight.cluster.endpoint`), then
announces `NodeReady` on stdout once the distribution has joined its seeds (bounded:
`Distribution.joined`); SIGTERM or SIGINT stops them in reverse order, the
distribution last (so presence can say goodbye to the other nodes).
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import json
import logging
import os
import re
import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .actors import ChildSpec, Exit, Node, Pid, receive, spawn_link, trap_exit
from .channels.endpoint import Endpoint
from .errors import AlightError
from .logs import TEXT_FORMAT
from .logs import configure as configure_logging

if TYPE_CHECKING:
    from .cluster import ClusterKeys, Discovery, Distribution

log = logging.getLogger("alight.runner")

LOG_FORMAT = TEXT_FORMAT
LogFormat = Literal["text", "json"]


class AppNotFound(AlightError):  # noqa: N818 - reads as what happened
    """``MODULE:APP`` could not be imported or is not an Endpoint."""


def _cluster_on(host: str, port: int) -> str | None:
    """The cluster fingerprint of whoever serves ``host:port`` now: ``""`` if what
    answers is not an alight cluster node, None if nothing listens or nothing answered
    in time (a loaded node of the same cluster, in a rolling restart, must not keep its
    peer from starting: only an answer refuses)."""
    import http.client

    target = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    conn = http.client.HTTPConnection(target, port, timeout=2.0)
    try:
        conn.request("GET", "/_alight/cluster")
        response = conn.getresponse()
        body = response.read(1024)
    except (OSError, http.client.HTTPException):  # refused, reset or timed out: unknown
        return None
    finally:
        conn.close()
    try:
        answer = json.loads(body) if response.status == 200 else None
    except ValueError:
        answer = None
    cluster = answer.get("cluster") if isinstance(answer, dict) else None
    return cluster if isinstance(cluster, str) else ""


class PortUnavailable(AlightError):  # noqa: N818 - reads as what happened
    """The HTTP port cannot be bound; the message says why and what to do."""


EXIT_UNAVAILABLE = 3
"""``alight run``/``alight node`` exit status when the node cannot start because
something it needs is taken or missing (the port, a cluster secret): not a crash
(1) and not a usage error (2)."""


def check_port(host: str, port: int, reuse_port: bool, cluster: str | None = None) -> None:
    """Raise `PortUnavailable` if ``host:port`` cannot be bound now, with the fix in
    the message: a clear line before the node starts instead of a supervisor's crash
    report (the bind itself may still lose a race, then the crash report says it).

    With ``reuse_port`` and ``cluster`` (this node's cluster fingerprint), a port that
    something already serves must be served by nodes of the same cluster (``GET
    /_alight/cluster``): two clusters on one port would split the clients between them
    without a word."""
    if port == 0:
        return
    if reuse_port and cluster is not None:
        holder = _cluster_on(host, port)
        if holder is not None and holder != cluster:
            raise PortUnavailable(
                f"{host}:{port} is already served by "
                + ("another cluster's nodes" if holder else "something that is not an alight cluster node")
                + ": sharing it would split the clients between them; pick another --port, or give this "
                "node that cluster's secret to join it"
            )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                share = "" if reuse_port else ", or --reuse-port to share it with other alight nodes"
                raise PortUnavailable(
                    f"cannot listen on {host}:{port}: the address is in use (another server there? "
                    f"pick another --port{share})"
                ) from None
            if error.errno == errno.EACCES:
                raise PortUnavailable(
                    f"cannot listen on {host}:{port}: permission denied (ports below 1024 need root "
                    "or CAP_NET_BIND_SERVICE; pick --port 1024 or above)"
                ) from None
            if error.errno == errno.EADDRNOTAVAIL:
                raise PortUnavailable(
                    f"cannot listen on {host}:{port}: no interface has the address {host} (--host)"
                ) from None
            raise PortUnavailable(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def load_app(spec: str) -> Endpoint:
    """Import ``MODULE:APP`` (the current directory is on the path, as for uvicorn)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise AppNotFound(f"expected MODULE:APP, got {spec!r}")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise AppNotFound(f"cannot import {module_name!r}: {error}") from error
    try:
        app: Any = getattr(module, attr)
    except AttributeError:
        raise AppNotFound(f"module {module_name!r} has no attribute {attr!r}") from None
    if callable(app) and not isinstance(app, Endpoint):
        app = app()
    if not isinstance(app, Endpoint):
        raise AppNotFound(f"{spec} is {type(app).__name__}, not an alight Endpoint")
    return app


def run_app(
    app: Endpoint,
    *,
    host: str = "127.0.0.1",
    port: int = 4000,
    reuse_port: bool = False,
    node_name: str = "alight@127.0.0.1",
    log_level: str = "info",
    log_format: LogFormat = "text",
) -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM/SIGINT, logging as
    `alight.logs.configure` says."""
    configure_logging(log_level, log_format)
    Node(node_name).serve([app.child_spec(port=port, host=host, reuse_port=reuse_port)])


# -- cluster nodes -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeReady:
    """What a cluster node announces once its distribution and endpoint are up.

    `line` is the one line ``alight node`` prints on stdout (the launcher waits for
    it); `parse` reads it back, None for any other line."""

    name: str
    pid: int
    http_port: int
    cluster_address: str

    PREFIX = "alight-node-ready"

    def line(self) -> str:
        return (
            f"{self.PREFIX} name={self.name} pid={self.pid} http_port={self.http_port} "
            f"cluster_address={self.cluster_address}"
        )

    @classmethod
    def parse(cls, line: str) -> NodeReady | None:
        match = _READY.fullmatch(line.strip())
        if match is None:
            return None
        return cls(match["name"], int(match["pid"]), int(match["port"]), match["address"])


_READY = re.compile(
    re.escape(NodeReady.PREFIX)
    + r" name=(?P<name>\S+) pid=(?P<pid>\d+) http_port=(?P<port>\d+) cluster_address=(?P<address>tcp://\S+)"
)


def run_node(
    app: Endpoint,
    *,
    name: str,
    keys: ClusterKeys,
    host: str = "127.0.0.1",
    port: int = 4000,
    reuse_port: bool = False,
    seeds: Iterable[str] = (),
    cluster_host: str = "127.0.0.1",
    cluster_port: int = 0,
    cluster_advertise: str | None = None,
    discovery: Discovery | None = None,
    on_ready: Callable[[NodeReady], None] | None = None,
    exit_with_parent: bool = False,
    log_level: str = "info",
    log_format: LogFormat = "text",
) -> None:
    """Serve ``app`` on a cluster node named ``name`` until SIGTERM/SIGINT, logging as
    `alight.logs.configure` says.

    The root supervisor starts, in order: the `Distribution` (bound to
    ``cluster_host:cluster_port``, telling its peers to connect to
    ``cluster_advertise`` or else to that address, joining through ``seeds`` and
    what ``discovery`` finds, authenticated with ``keys``), the endpoint on ``host:port`` (``port`` 0 picks a
    free one), and finally calls ``on_ready`` with the node's `NodeReady` (default: print its `line`
    and log it). A bare ``name`` (no ``@``) takes the advertised host, as Erlang's long
    names do: ``web1`` advertised as 10.0.0.5 is ``web1@10.0.0.5``.

    With ``exit_with_parent`` the node also stops when its stdin reaches
    end of file: the launcher holds the other end, so a launcher that dies, even by
    SIGKILL, leaves no orphan node. A failure to start any of them stops the node
    and raises (the root supervisor's `StartError`)."""
    from .cluster import Distribution
    from .cluster.address import advertised, host_of, node_name

    configure_logging(log_level, log_format)
    node = Node(node_name(name, host_of(advertised(cluster_host, cluster_port or 1, cluster_advertise))))
    dist = Distribution(
        node,
        seeds=seeds,
        keys=keys,
        host=cluster_host,
        port=cluster_port,
        advertise=cluster_advertise,
        discovery=discovery,
    )
    announce = on_ready if on_ready is not None else _print_ready
    children = [
        ChildSpec(id="distribution", start=lambda: _start_distribution(dist), shutdown=5.0),
        app.child_spec(port=port, host=host, reuse_port=reuse_port),
        ChildSpec(id="ready", start=lambda: _announce(app, dist, port, announce), restart="temporary"),
    ]
    if exit_with_parent:
        children.insert(0, ChildSpec(id="parent_watch", start=lambda: spawn_link(_watch_stdin, node), shutdown=1.0))
    node.serve(children)


async def _start_distribution(dist: Distribution) -> Pid:
    # Started in the supervisor's start call, so that the endpoint (the next child)
    # starts on a node that is already in the cluster: OTP's start_link acknowledgement.
    await dist.start()
    return spawn_link(_hold_distribution, dist)


async def _hold_distribution(dist: Distribution) -> None:
    """Owns the running distribution; stops it on the supervisor's shutdown."""
    trap_exit(True)
    try:
        await receive(lambda m: isinstance(m, Exit))
    finally:
        await dist.stop()


async def _watch_stdin(node: Node) -> None:
    """Stop the node (as SIGTERM does) when stdin reaches end of file."""
    trap_exit(True)
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            log.warning("stdin closed (the launcher is gone): stopping")
            node.request_stop()

    loop.add_reader(fd, readable)
    try:
        await receive(lambda m: isinstance(m, Exit))
    finally:
        loop.remove_reader(fd)


async def _announce(app: Endpoint, dist: Distribution, port: int, announce: Callable[[NodeReady], None]) -> None:
    """The last child's start: once the distribution has joined its seeds, report the
    node ready and start nothing (`Ignored`). A seed that is unreachable is retried in
    the background (the node is ready after `Distribution.joined`'s bound). One whose
    handshakes fail (another cluster secret) leaves the node not ready: the start goes
    on in a process of its own (so that a SIGTERM still stops the node), which logs what
    it waits for every few seconds, naming ALIGHT_CLUSTER_SECRET, and announces the node
    ready if the seed ever takes it."""
    if not await dist.joined() and dist.refused_seeds():
        spawn_link(_announce_when_joined, app, dist, port, announce)
        return
    await _ready(app, dist, port, announce)


async def _announce_when_joined(
    app: Endpoint, dist: Distribution, port: int, announce: Callable[[NodeReady], None]
) -> None:
    while not await dist.joined() and dist.refused_seeds():
        pass  # joined() has logged what it waits for, and why
    await _ready(app, dist, port, announce)


async def _ready(app: Endpoint, dist: Distribution, port: int, announce: Callable[[NodeReady], None]) -> None:
    if port == 0:
        from .transports.listener import listener_port

        listener = app._listener  # set by the endpoint's "http" child, started just before
        assert listener is not None
        port = await listener_port(listener)
    announce(NodeReady(dist.node.name, os.getpid(), port, dist.address))


def _print_ready(ready: NodeReady) -> None:
    log.info("node %s ready: http port %d, cluster address %s", ready.name, ready.http_port, ready.cluster_address)
    print(ready.line(), flush=True)
