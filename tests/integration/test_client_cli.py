"""``alight client URL TOPIC`` against the reference app, as a real subprocess: typed
``EVENT JSON`` lines are pushed (the reply printed), broadcasts are printed, and end of
input exits 0. Over both transports and both serializer versions."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from testkit import UNIT
from testkit.processes import REPO, RunningApp, free_port

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane

INPUT = 'ping {"a":1}\nshout {"x":2}\n'


@pytest.mark.parametrize(("transport", "vsn"), [("websocket", "2.0.0"), ("longpoll", "1.0.0")])
def test_client_pushes_typed_lines_and_prints_what_arrives(reference_app: RunningApp, transport: str, vsn: str) -> None:
    done, _ = _client(
        f"ws://{reference_app.host}/socket",
        "room:lobby",
        *("--param", "user_id=cli", "--join-payload", '{"device":"term"}', "--transport", transport, "--vsn", vsn),
        *("--timeout", str(5 * UNIT)),
        stdin=INPUT,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == 'joined room:lobby {"joined":"lobby"}', done.stdout
    assert 'reply ping ok {"a":1}' in lines, done.stdout
    assert 'shout {"x":2}' in lines, done.stdout


def test_client_join_refused_exits_1(reference_app: RunningApp) -> None:
    done, _ = _client(f"ws://{reference_app.host}/socket", "room:forbidden")
    assert done.returncode == 1, done.stdout
    assert "join failed" in done.stderr


def _client(*args: str, stdin: str = "") -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "alight.cli", "client", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30 * UNIT,
        check=False,
    )
    return done, time.monotonic() - started


@pytest.mark.parametrize("transport", ["websocket", "longpoll"])
def test_a_refused_connection_or_a_wrong_path_is_said_at_once(reference_app: RunningApp, transport: str) -> None:
    base = f"ws://{reference_app.host}"
    refused, took = _client(f"{base}/socket", "room:x", "--param", "token=bad", "--transport", transport)
    assert refused.returncode == 1, refused.stderr
    assert "refused the connection (403" in refused.stderr
    assert "token=bad" not in refused.stderr  # params may hold secrets: never echoed
    assert took < 5 * UNIT  # not a 10 s join timeout
    missing, took = _client(f"{base}/nope", "room:x", "--transport", transport)
    assert missing.returncode == 1, missing.stderr
    assert "no socket at this path (404)" in missing.stderr or "HTTP 404" in missing.stderr, missing.stderr
    assert took < 5 * UNIT


def test_nothing_listening_is_said_with_each_retry() -> None:
    done, took = _client(f"ws://127.0.0.1:{free_port()}/socket", "room:x", "--timeout", str(2 * UNIT))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    retries = [line for line in lines if line.startswith("nothing is listening at 127.0.0.1:")]
    assert len(retries) >= 2, done.stderr
    assert all("retrying in" in line for line in retries)
    assert f"error: not connected within {2 * UNIT:g} s" in done.stderr
    assert took < 10 * UNIT


def test_a_push_without_reply_at_end_of_input_is_not_an_error(reference_app: RunningApp) -> None:
    done, _ = _client(f"ws://{reference_app.host}/socket", "room:quiet", "--linger", "0.2", stdin="no_reply_event {}\n")
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr.lower(), done.stderr
