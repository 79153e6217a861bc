"""``alight client URL TOPIC`` against the reference app, as a real subprocess: typed
``EVENT JSON`` lines are pushed (the reply printed), broadcasts are printed, and end of
input exits 0. Over both transports and both serializer versions."""

from __future__ import annotations

import subprocess
import sys

import pytest
from testkit import UNIT
from testkit.processes import REPO, RunningApp

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

INPUT = 'ping {"a":1}\nshout {"x":2}\n'


@pytest.mark.parametrize(("transport", "vsn"), [("websocket", "2.0.0"), ("longpoll", "1.0.0")])
def test_client_pushes_typed_lines_and_prints_what_arrives(reference_app: RunningApp, transport: str, vsn: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "alight.cli",
            "client",
            f"ws://{reference_app.host}/socket",
            "room:lobby",
            "--param",
            "user_id=cli",
            "--join-payload",
            '{"device":"term"}',
            "--transport",
            transport,
            "--vsn",
            vsn,
            "--timeout",
            str(5 * UNIT),
        ],
        input=INPUT,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=20 * UNIT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == 'joined room:lobby {"joined":"lobby"}', done.stdout
    assert 'reply ping ok {"a":1}' in lines, done.stdout
    assert 'shout {"x":2}' in lines, done.stdout


def test_client_join_refused_exits_1(reference_app: RunningApp) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "alight.cli", "client", f"ws://{reference_app.host}/socket", "room:forbidden"],
        input="",
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=20 * UNIT,
        check=False,
    )
    assert done.returncode == 1, done.stdout
    assert "join failed" in done.stderr
