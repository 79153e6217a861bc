"""The reference socket on an endpoint whose listener limits are small enough to reach
in a test: ``alight run testkit.apps.hostile:app``."""

from __future__ import annotations

from alight.channels import Endpoint
from alight.examples.reference import UserSocket, health
from alight.transports.server import ServerConfig
from testkit import UNIT

MAX_PARTIAL = 2 * 1_048_576
PER_ADDRESS = 20
FRAME_TIMEOUT = 3.0 * UNIT
"""Long enough that three unfinished frames are all held at once, even on a loaded
machine, before the first one's deadline."""

app = Endpoint(
    check_origin=False,
    name="hostile",
    presence=True,
    server_config=ServerConfig(
        header_timeout=1.0 * UNIT,
        body_timeout=1.0 * UNIT,
        max_connections_per_address=PER_ADDRESS,
        max_partial_bytes=MAX_PARTIAL,
        frame_timeout=FRAME_TIMEOUT,
    ),
)
app.socket("/socket", UserSocket, websocket=True, longpoll=True)
app.route("GET", "/health", health)
