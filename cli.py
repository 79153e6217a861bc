"""The ``alight`` command."""

from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="alight")
def main() -> None:
    """alight: Phoenix Channels for Python, on a BEAM-like actor runtime."""


@main.group()
def demo() -> None:
    """Demos you can watch."""
