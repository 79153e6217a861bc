"""``GET /metrics`` of an app served as users serve it, in its own OS process: by
``alight run`` (the native server) and by uvicorn (the ASGI app). A real client
connects, joins and pushes; the scrape, parsed with ``prometheus_client.parser``, shows
the counters moving."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from testkit import UNIT
from testkit.processes import RunningApp, alight_run, running_app, uvicorn_run

from alight.client import Socket

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

WAIT = 5 * UNIT
SERVERS: dict[str, Callable[[str, int], list[str]]] = {"native": alight_run, "asgi": uvicorn_run}


def scrape(app: RunningApp) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(app.http("/metrics"), timeout=WAIT) as response:
        assert response.status == 200
        body = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "node"))
            samples[(sample.name, labels)] = sample.value
    return samples


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_metrics_of_a_served_app_move_with_its_clients(server: str, tmp_path: Path) -> None:
    spec = "testkit.apps.metrics:" + ("asgi_app" if server == "asgi" else "app")
    with running_app(spec, tmp_path / "app.log", command=SERVERS[server]) as app:
        before = scrape(app)
        connects = ("alight_socket_connects_total", (("result", "ok"), ("transport", "websocket"), ("vsn", "2.0.0")))
        assert before.get(connects, 0) == 0

        async def use() -> None:
            async with Socket(f"ws://{app.host}/socket") as socket:
                channel = socket.channel("echo:1")
                await channel.join(WAIT)
                assert (await channel.push("hello", {"n": 1}, WAIT)).response == {"n": 1}
                during = await asyncio.to_thread(scrape, app)
                assert during[("alight_connections", ())] == 1
                assert during[("alight_channels", ())] == 1

        asyncio.run(asyncio.wait_for(use(), 10 * WAIT))
        after = scrape(app)
        assert after[connects] == 1
        assert after[("alight_channel_joins_total", (("channel", "EchoChannel"), ("result", "ok")))] == 1
        handled = (("channel", "EchoChannel"), ("event", "hello"))
        assert after[("alight_channel_handle_in_duration_seconds_count", handled)] == 1
        assert after[("alight_processes", ())] > 0
