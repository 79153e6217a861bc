"""The ``alight`` command."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, TypeVar, cast

import click

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:
    from rich.table import Table

    from .launcher import LaunchConfig, NodeStatus


def _log_options(command: F) -> F:
    """``--log-level`` and ``--log-format`` (`alight.logs.configure`), as ``alight run``
    and ``alight node`` take them."""
    command = click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        envvar="ALIGHT_LOG_FORMAT",
        help="Text lines, or one JSON object per line [env: ALIGHT_LOG_FORMAT].",
    )(command)
    return click.option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
        default="info",
        show_default=True,
        envvar="ALIGHT_LOG_LEVEL",
        help="What to log [env: ALIGHT_LOG_LEVEL].",
    )(command)


@click.group(context_settings={"auto_envvar_prefix": "ALIGHT"})
@click.version_option(package_name="alight")
def main() -> None:
    """alight: Phoenix Channels for Python, on a BEAM-like actor runtime.

    Every option can also come from the environment, as ALIGHT_<COMMAND>_<OPTION>
    (e.g. ALIGHT_RUN_PORT=4001, ALIGHT_NODE_SEEDS=10.0.0.5:4370); the ones marked
    [env: ...] have a shorter name too. Exit status: 0 done, 1 failed, 2 usage error,
    3 something the node needs is taken or missing (the port, the cluster secret)."""


@main.group(invoke_without_command=True)
@click.option("--port", default=4000, show_default=True, type=click.IntRange(1, 65535), help="HTTP port.")
@click.option("--nodes", "count", default=3, show_default=True, type=click.IntRange(1, 16), help="How many nodes.")
@click.option("--status-file", type=click.Path(dir_okay=False, path_type=Path), help="Keep a JSON node list here.")
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path), help="Node output to DIR/NAME.log.")
@click.option("--verbose", is_flag=True, help="Print every node's log here (default: only their warnings and errors).")
@click.pass_context
def demo(
    ctx: click.Context, port: int, count: int, status_file: Path | None, log_dir: Path | None, verbose: bool
) -> None:
    """The chat demo: a cluster of nodes on this machine serving a chat at
    http://127.0.0.1:PORT (they share the port), until Ctrl-C.

    Pick a name, join rooms, chat; crash your channel or your socket, or kill the
    node you are connected to, and watch the page recover while the launcher
    restarts the node. Each run makes a fresh cluster secret, given to the nodes
    in their environment. Other demos are subcommands: alight demo supervision.

    It prints a line per node as it comes up, then where to go and the node table;
    the nodes' own logs are in --log-dir, or here with --verbose (without either,
    only their warnings and errors: crashes, nodes down).
    """
    if ctx.invoked_subcommand is not None:
        return
    from .demo.chat import APP
    from .launcher import LaunchConfig

    try:
        config = LaunchConfig(
            app=APP,
            nodes=count,
            port=port,
            restart=True,
            status_file=status_file,
            log_dir=log_dir,
            node_log_level=None if verbose or log_dir is not None else "warning",
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    url = f"http://127.0.0.1:{port}"
    up = (
        f"[bold green]chat demo up:[/bold green] open [link={url}]{url}[/link] in two browser windows;"
        f" the live dashboard is at [link={url}/dashboard]{url}/dashboard[/link], metrics at {url}/metrics."
        " Ctrl-C stops it"
    )
    sys.exit(asyncio.run(_run_cluster(config, secret=secrets.token_urlsafe(32), up_message=up, compact=not verbose)))


def _keys_can_be_read(stream: IO[str]) -> bool:
    """A terminal, a pipe or a socket: what the event loop can watch for key presses."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError):
        return False
    return stream.isatty() or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@demo.command("supervision")
@click.option("--script", is_flag=True, help="Run a fixed scenario unattended and print what was observed.")
def supervision(script: bool) -> None:
    """A supervision tree you can crash: one_for_one, one_for_all, rest_for_one.

    Interactive by default (a live view; keys 1-9 crash a worker, a/b/c burst-crash a
    sub-tree to breach its restart intensity, A/B/C kill a supervisor, q quits).
    With --script, exits 0 only if every restart matched its strategy.
    """
    from .demo.supervision import run

    if not script and not _keys_can_be_read(sys.stdin):
        raise click.UsageError(
            "the interactive demo reads keys from a terminal or a pipe, and stdin is neither "
            "(/dev/null, a file); run it in a terminal, or unattended: alight demo supervision --script"
        )
    sys.exit(run(script=script))


@main.command("run")
@click.argument("app")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option(
    "--port", default=4000, show_default=True, type=click.IntRange(0, 65535), help="HTTP port (0 picks a free one)."
)
@click.option("--reuse-port", is_flag=True, help="Share the port with other nodes (SO_REUSEPORT).")
@click.option(
    "--name",
    "node_name",
    default=None,
    help="Node name [default: alight@127.0.0.1; with --pubsub, alight-PID@HOSTNAME, one per process].",
)
@click.option(
    "--pubsub",
    "pubsub_url",
    envvar="ALIGHT_PUBSUB",
    metavar="URL",
    help="Share PubSub and presence with the other nodes on this Redis/Valkey (redis://HOST:PORT/DB, "
    "rediss:// for TLS); needs ALIGHT_CLUSTER_SECRET. [env: ALIGHT_PUBSUB]",
)
@_log_options
def run_command(
    app: str,
    host: str,
    port: int,
    reuse_port: bool,
    node_name: str | None,
    pubsub_url: str | None,
    log_level: str,
    log_format: Literal["text", "json"],
) -> None:
    """Serve APP (MODULE:ENDPOINT, e.g. alight.examples.reference:app) until Ctrl-C or SIGTERM."""
    from .runner import AppNotFound, load_app, run_app

    try:
        endpoint = load_app(app)
    except AppNotFound as error:
        raise click.BadParameter(str(error), param_hint="APP") from None
    _check_port(host, port, reuse_port)
    if pubsub_url:
        _extend_with_redis(endpoint, pubsub_url)
        if node_name is None:
            node_name = f"alight-{os.getpid()}@{socket.gethostname()}"
    run_app(
        endpoint,
        host=host,
        port=port,
        reuse_port=reuse_port,
        node_name=node_name or "alight@127.0.0.1",
        log_level=log_level,
        log_format=log_format,
    )


def _check_port(host: str, port: int, reuse_port: bool, cluster: str | None = None) -> None:
    """`alight.runner.check_port`; a `PortUnavailable` is one line on stderr and the
    exit status `EXIT_UNAVAILABLE` (3)."""
    from .runner import EXIT_UNAVAILABLE, PortUnavailable, check_port

    try:
        check_port(host, port, reuse_port, cluster)
    except PortUnavailable as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(EXIT_UNAVAILABLE)


def _extend_with_redis(endpoint: Any, url: str) -> None:
    """``endpoint.extend(RedisPubSub(url))``, refused with a one-line reason when the URL,
    the secret or the redis extra is missing."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise click.BadParameter(f"expected redis://HOST:PORT/DB, rediss://... or unix://PATH, got {url!r}")
    try:
        from .cluster import load_secret
        from .cluster.redis import RedisPubSub
    except ImportError as error:
        raise click.UsageError(f"--pubsub needs the redis extra: pip install 'alight[redis]' ({error})") from None
    from .cluster.errors import BadSecret

    try:
        secret = load_secret()
    except BadSecret as error:
        from .runner import EXIT_UNAVAILABLE

        click.echo(f"Error: --pubsub needs the cluster secret that signs its frames: {error}", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    endpoint.extend(RedisPubSub(url, secret=secret))


@main.command("node")
@click.option(
    "--name",
    default="alight",
    show_default=True,
    envvar="ALIGHT_NODE_NAME",
    help="Node name, NAME@HOST or NAME (then @ the advertised host); unique in the cluster.",
)
@click.option("--app", "app", required=True, help="MODULE:APP, e.g. alight.examples.reference:app.")
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP bind address.")
@click.option(
    "--port", default=4000, show_default=True, type=click.IntRange(0, 65535), help="HTTP port (0 picks a free one)."
)
@click.option("--reuse-port", is_flag=True, help="Share the HTTP port with other nodes (SO_REUSEPORT).")
@click.option(
    "--cluster-bind",
    "--cluster-host",
    "cluster_host",
    default="127.0.0.1",
    show_default=True,
    envvar="ALIGHT_CLUSTER_BIND",
    help="Cluster bind address (0.0.0.0: every interface, then --cluster-advertise is needed).",
)
@click.option(
    "--cluster-port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Cluster port (0 picks a free one).",
)
@click.option(
    "--cluster-advertise",
    envvar="ALIGHT_CLUSTER_ADVERTISE",
    metavar="HOST[:PORT]",
    help="The address peers connect to, if not the bind address (containers, NAT).",
)
@click.option(
    "--seeds",
    multiple=True,
    envvar="ALIGHT_SEEDS",
    help="Cluster addresses to join through (tcp://HOST:PORT, comma-separated).",
)
@click.option(
    "--discover",
    envvar="ALIGHT_DISCOVER",
    metavar="dns:NAME[:PORT] | seeds:ADDR,...",
    help="Find the nodes: the A/AAAA records of NAME, polled (e.g. a Kubernetes headless service), or seeds.",
)
@click.option(
    "--discover-interval",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between DNS lookups.",
)
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False),
    help="File holding the cluster secret (chmod 600); default: $ALIGHT_CLUSTER_SECRET.",
)
@click.option("--exit-with-parent", is_flag=True, hidden=True, help="Stop when stdin closes (used by the launcher).")
@_log_options
def node_command(
    name: str,
    app: str,
    host: str,
    port: int,
    reuse_port: bool,
    cluster_host: str,
    cluster_port: int,
    cluster_advertise: str | None,
    seeds: tuple[str, ...],
    discover: str | None,
    discover_interval: float,
    secret_file: str | None,
    exit_with_parent: bool,
    log_level: str,
    log_format: Literal["text", "json"],
) -> None:
    """Run APP on one cluster node, joining the cluster through --seeds or --discover.

    For clusters that span machines: start one node per machine (or per core) with the
    same secret and at least one seed in common, its cluster port bound to an address
    the others reach (--cluster-bind) or advertising one (--cluster-advertise). Prints
    a ready line with the node's HTTP port and cluster address once it serves; SIGTERM
    or Ctrl-C stops it. Options can also come from ALIGHT_NODE_NAME, ALIGHT_CLUSTER_BIND,
    ALIGHT_CLUSTER_ADVERTISE, ALIGHT_SEEDS and ALIGHT_DISCOVER.
    """
    from .cluster import AddressError, BadSecret, load_keys, parse_discovery
    from .cluster.address import advertised, seed_address
    from .runner import AppNotFound, load_app, run_node

    try:
        advertised(cluster_host, cluster_port or 1, cluster_advertise)
    except AddressError as error:
        hint = "--cluster-advertise" if cluster_advertise else "--cluster-bind"
        raise click.BadParameter(str(error), param_hint=hint) from None
    try:
        seed_list = [seed_address(seed) for value in seeds for seed in value.split(",") if seed.strip()]
    except AddressError as error:
        raise click.BadParameter(str(error), param_hint="--seeds") from None
    try:
        discovery = parse_discovery(discover, cluster_port, discover_interval) if discover else None
    except AddressError as error:
        raise click.BadParameter(str(error), param_hint="--discover") from None
    try:
        keys = load_keys(key_file=secret_file)
    except BadSecret as error:
        from .runner import EXIT_UNAVAILABLE

        said = str(error).replace("use a key file", "pass --secret-file PATH")  # the CLI's word for it
        click.echo(f"Error: refusing to start node {name}: {said}", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    try:
        endpoint = load_app(app)
    except AppNotFound as error:
        raise click.BadParameter(str(error), param_hint="--app") from None
    from .cluster import fingerprint

    _check_port(host, port, reuse_port, fingerprint(keys))
    try:
        run_node(
            endpoint,
            name=name,
            keys=keys,
            host=host,
            port=port,
            reuse_port=reuse_port,
            seeds=seed_list,
            cluster_host=cluster_host,
            cluster_port=cluster_port,
            cluster_advertise=cluster_advertise,
            discovery=discovery,
            exit_with_parent=exit_with_parent,
            log_level=log_level,
            log_format=log_format,
        )
    except AddressError as error:
        raise click.BadParameter(str(error), param_hint="--name") from None


@main.command("client")
@click.argument("url")
@click.argument("topic")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Connect parameter (repeatable).")
@click.option("--join-payload", default="{}", show_default=True, help="The join payload (a JSON object).")
@click.option("--transport", type=click.Choice(["websocket", "longpoll"]), default="websocket", show_default=True)
@click.option("--vsn", type=click.Choice(["2.0.0", "1.0.0"]), default="2.0.0", show_default=True)
@click.option("--timeout", default=10.0, show_default=True, type=float, help="Seconds a join or push waits.")
@click.option("--linger", default=1.0, show_default=True, type=float, help="Seconds to wait for replies at EOF.")
def client_command(
    url: str,
    topic: str,
    params: tuple[str, ...],
    join_payload: str,
    transport: str,
    vsn: str,
    timeout: float,
    linger: float,
) -> None:
    """Join TOPIC at URL (e.g. ws://localhost:4000/socket): print what arrives, one
    ``EVENT JSON`` line each, and push the ``EVENT JSON`` lines typed on stdin, printing
    each reply. Exits on end of input or Ctrl-C."""
    import orjson

    from .client.cli import parse_params, run_client

    try:
        connect_params = parse_params(params)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--param") from None
    try:
        payload = orjson.loads(join_payload)
    except orjson.JSONDecodeError as error:
        raise click.BadParameter(str(error), param_hint="--join-payload") from None
    if not isinstance(payload, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--join-payload")
    chosen: Literal["websocket", "longpoll"] = "longpoll" if transport == "longpoll" else "websocket"
    try:
        code = asyncio.run(
            run_client(
                url,
                topic,
                params=connect_params,
                join_payload=payload,
                transport=chosen,
                vsn=vsn,
                timeout=timeout,
                linger=linger,
            )
        )
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


@main.group()
def cluster() -> None:
    """Clusters of nodes on this machine."""


@cluster.command("start")
@click.option("--nodes", "count", required=True, type=click.IntRange(min=1), help="How many nodes.")
@click.option("--app", "app", required=True, help="MODULE:APP, e.g. alight.examples.reference:app.")
@click.option("--port", default=4000, show_default=True, type=click.IntRange(1, 65535), help="HTTP port.")
@click.option("--port-per-node", is_flag=True, help="Node i listens on PORT+i instead of sharing PORT.")
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP bind address and node host name.")
@click.option("--cluster-host", default="127.0.0.1", show_default=True, help="Cluster bind address.")
@click.option("--status-file", type=click.Path(dir_okay=False, path_type=Path), help="Keep a JSON node list here.")
@click.option("--restart", is_flag=True, help="Relaunch a node that dies (same name, new incarnation).")
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path), help="Node output to DIR/NAME.log.")
@click.option("--ready-timeout", default=30.0, show_default=True, type=float, help="Seconds a node has to be ready.")
def cluster_start(
    count: int,
    app: str,
    port: int,
    port_per_node: bool,
    host: str,
    cluster_host: str,
    status_file: Path | None,
    restart: bool,
    log_dir: Path | None,
    ready_timeout: float,
) -> None:
    """Start N nodes of APP as OS processes on this machine, until Ctrl-C or SIGTERM.

    By default they share --port with SO_REUSEPORT (the kernel spreads connections
    over them); --port-per-node gives node i port PORT+i. The cluster secret is
    $ALIGHT_CLUSTER_SECRET, or a random one made for this cluster.
    """
    from .launcher import LaunchConfig

    try:
        config = LaunchConfig(
            app=app,
            nodes=count,
            port=port,
            host=host,
            port_per_node=port_per_node,
            restart=restart,
            cluster_host=cluster_host,
            status_file=status_file,
            log_dir=log_dir,
            ready_timeout=ready_timeout,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    sys.exit(asyncio.run(_run_cluster(config)))


async def _run_cluster(
    config: LaunchConfig, *, secret: str | None = None, up_message: str | None = None, compact: bool = False
) -> int:
    """`ClusterLauncher` until SIGTERM/SIGINT: 0 after a clean stop, 1 if the cluster
    could not start or every node is down for good. ``secret`` (default:
    $ALIGHT_CLUSTER_SECRET, else a random one) goes to the nodes in their environment;
    ``up_message`` (rich markup) is printed once every node is up. ``compact``: the
    launcher says only warnings of its own, a line per node as it comes up, then
    ``up_message`` and the table."""
    import logging
    import os
    import signal
    import time

    from rich.console import Console

    from .cluster import ENV_VAR, BadSecret
    from .launcher import STARTING, UP, ClusterLauncher, LaunchError, LineWriter

    # Everything the launcher prints goes through writers its loop never waits on: a
    # reader that stops reading loses lines, the nodes keep being restarted.
    errors, out = LineWriter(sys.stderr), LineWriter(sys.stdout)
    level = logging.WARNING if compact else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=errors)
    console = Console(file=cast(IO[str], out))  # what rich uses: write, flush, encoding, isatty
    started = False
    launched: dict[str, float] = {}  # name -> when its start was first seen, until it is up

    def show(nodes: list[NodeStatus]) -> None:
        if started:
            console.print(_node_table(nodes))
        elif compact:
            for node in nodes:
                if node.state == STARTING and node.name not in launched:
                    launched[node.name] = time.monotonic()
                elif node.state == UP and node.name in launched:
                    took = time.monotonic() - launched.pop(node.name)
                    console.print(f"  {node.name} up in {took:.1f} s (pid {node.pid})")

    # A cluster of its own: a fresh secret unless the caller shares one through the
    # environment (the launcher gives it to the nodes the same way, never in argv).
    if secret is None:
        secret = os.environ.get(ENV_VAR) or secrets.token_urlsafe(32)
    try:
        launcher = ClusterLauncher(config, secret=secret, on_change=show, output=errors)
    except BadSecret as error:
        console.print(f"[red]cannot start the cluster:[/red] {error}")
        await out.aclose()
        await errors.aclose()
        return 1
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        starting = asyncio.ensure_future(launcher.start())
        stop_wait = asyncio.ensure_future(stopping.wait())
        await asyncio.wait([starting, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stop_wait
        if not starting.done():  # a signal during the start
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, LaunchError):
                await starting
            return 0
        try:
            starting.result()
        except LaunchError as error:
            console.print(f"[red]the cluster did not start:[/red] {error}")
            return 1
        started = True
        if compact and up_message is not None:
            console.print(up_message)
            show(launcher.nodes)
        else:
            show(launcher.nodes)
            console.print(f"cluster of {config.nodes} nodes up; Ctrl-C or SIGTERM stops it")
            if up_message is not None:
                console.print(up_message)
        await launcher.monitor(stopping)
        return 0 if stopping.is_set() else 1
    finally:
        await launcher.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        console.print("cluster stopped")
        await out.aclose()
        await errors.aclose()


def _node_table(nodes: list[NodeStatus]) -> Table:
    from rich.table import Table

    table = Table(title="alight cluster")
    for column in ("name", "pid", "http port", "cluster address", "state"):
        table.add_column(column)
    for node in nodes:
        table.add_row(node.name, str(node.pid or "-"), str(node.http_port), node.cluster_address or "-", node.state)
    return table


if __name__ == "__main__":
    main()
