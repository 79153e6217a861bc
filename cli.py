"""The ``alight`` command."""

from __future__ import annotations

import sys

import click


@click.group()
@click.version_option(package_name="alight")
def main() -> None:
    """alight: Phoenix Channels for Python, on a BEAM-like actor runtime."""


@main.group()
def demo() -> None:
    """Demos you can watch."""


@demo.command("supervision")
@click.option("--script", is_flag=True, help="Run a fixed scenario unattended and print what was observed.")
def supervision(script: bool) -> None:
    """A supervision tree you can crash: one_for_one, one_for_all, rest_for_one.

    Interactive by default (a live view; keys 1-9 crash a worker, a/b/c burst-crash a
    sub-tree to breach its restart intensity, A/B/C kill a supervisor, q quits).
    With --script, exits 0 only if every restart matched its strategy.
    """
    from alight.demo.supervision import run

    sys.exit(run(script=script))


@main.command("run")
@click.argument("app")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", default=4000, show_default=True, type=int, help="HTTP port (0 picks a free one).")
@click.option("--reuse-port", is_flag=True, help="Share the port with other nodes (SO_REUSEPORT).")
@click.option("--name", "node_name", default="alight@127.0.0.1", show_default=True, help="Node name.")
def run_command(app: str, host: str, port: int, reuse_port: bool, node_name: str) -> None:
    """Serve APP (MODULE:ENDPOINT, e.g. examples.reference:app) until Ctrl-C or SIGTERM."""
    from alight.runner import AppNotFound, load_app, run_app

    try:
        endpoint = load_app(app)
    except AppNotFound as error:
        raise click.BadParameter(str(error), param_hint="APP") from None
    run_app(endpoint, host=host, port=port, reuse_port=reuse_port, node_name=node_name)


if __name__ == "__main__":
    main()
