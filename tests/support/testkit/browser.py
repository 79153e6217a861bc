"""Debian's chromium for the browser tests, and the dashboard node they look at."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit import UNIT
from testkit.processes import REPO, kill_group, read_until_ready

CHROMIUM = Path("/usr/bin/chromium")


def require_chromium() -> None:
    """Skip (or fail, under ``ALIGHT_REQUIRE_BROWSER``) without Debian's chromium."""
    if not CHROMIUM.exists():
        if os.environ.get("ALIGHT_REQUIRE_BROWSER"):
            pytest.fail(f"ALIGHT_REQUIRE_BROWSER is set but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium; ./dev test does it)")


CHROMIUM = Path("/usr/bin/chromium")


JOB = "alight.root/workers/jobs/job.1"


@dataclass
class DashboardNode:
    """A `testkit.apps.dashboard_node` OS process: its name, HTTP port and cluster address."""

    name: str
    proc: subprocess.Popen[bytes]
    http_port: int
    address: str

    def url(self, path: str = "/dashboard") -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def stop(self) -> None:
        kill_group(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_dashboard_node(name: str, *args: str, env: dict[str, str] | None = None) -> DashboardNode:
    """Start ``python -m testkit.apps.dashboard_node NAME ARGS`` and wait (bounded)
    for its ``ready`` line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "testkit.apps.dashboard_node", name, *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        bufsize=0,
        start_new_session=True,
    )
    try:
        lines = read_until_ready(proc, name, 15 * UNIT)
    except BaseException:
        kill_group(proc)
        raise
    port, address = 0, ""
    for line in lines:
        if line.startswith("http "):
            port = int(line.split()[1])
        elif line.startswith("address "):
            address = line.split()[1]
    return DashboardNode(name, proc, port, address)


def require_browser() -> None:
    if not CHROMIUM.exists():
        if os.environ.get("ALIGHT_REQUIRE_BROWSER"):
            pytest.fail(f"ALIGHT_REQUIRE_BROWSER is set but {CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium; ./dev test does it)")
