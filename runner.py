"""Run an application on a node: what ``alight run MODULE:APP`` does.

``MODULE:APP`` names an `Endpoint` (or a callable returning one) importable from
the current directory, like uvicorn's app strings. The node serves the endpoint's
tree under its root supervisor until SIGTERM or SIGINT, then stops it in order.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

from .actors import Node
from .channels.endpoint import Endpoint


class AppNotFound(Exception):  # noqa: N818 - reads as what happened
    """``MODULE:APP`` could not be imported or is not an Endpoint."""


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
) -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    Node(node_name).serve([app.child_spec(port=port, host=host, reuse_port=reuse_port)])
