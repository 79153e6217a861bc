"""Cluster nodes on hosts of their own: ``alight node`` in network namespaces.

`hosts` (a context manager) makes `alight.benchmarks._netns.Hosts`, each host a network
namespace with its own address on a bridge, or skips the test with the reason namespaces
cannot be made here (not root, no iproute2, no permission), and removes them afterwards,
whatever happened. `HostNode` runs ``alight node --app testkit.apps.app_node:app`` on one
of them, exactly as a user runs a node on a machine of a cluster, its log in a file.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alight.benchmarks._netns import Hosts, netns_possible
from alight.runner import NodeReady
from testkit.cluster import SECRET, WAIT, HttpNode
from testkit.processes import REPO, kill_group

ALIGHT = Path(sys.executable).with_name("alight")
"""The ``alight`` command of this environment."""
HTTP_PORT = 4000
CLUSTER_PORT = 4370


@contextlib.contextmanager
def hosts(count: int) -> Iterator[Hosts]:
    """``count`` hosts in network namespaces (skips the test where they cannot be made)."""
    why_not = netns_possible(faults=False)
    if why_not is not None:
        pytest.skip(f"network namespaces are needed for hosts of their own: {why_not}")
    made = Hosts(count, use_netns=True)
    try:
        yield made
    finally:
        made.close()


class HostNode(HttpNode):
    """``alight node`` on host ``index`` of ``hosts``: HTTP on the host's address, the
    cluster port bound on ``bind`` (the host's address by default, or a wildcard) and
    advertised as ``advertise`` (none: the bound address). ``name`` is bare: the node
    takes the host it advertises. Started by `start`, which waits for its ready line."""

    def __init__(
        self,
        hosts: Hosts,
        index: int,
        name: str,
        log_dir: Path,
        *,
        seeds: tuple[str, ...] = (),
        bind: str | None = None,
        advertise: str | None = None,
        http_port: int = HTTP_PORT,
        cluster_port: int = CLUSTER_PORT,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.hosts = hosts
        self.index = index
        self.base_name = name
        self.ip = hosts.address(index)
        self.http_port = http_port
        self.cluster_port = cluster_port
        self.seeds = seeds
        self.bind = bind or self.ip
        self.advertise = advertise
        self.extra = extra
        self.log_path = log_dir / f"{name}.log"
        self.name = ""
        self.address = ""

    def command(self) -> list[str]:
        command = [
            *self.hosts.prefix(self.index),
            str(ALIGHT), "node", "--name", self.base_name, "--app", "testkit.apps.app_node:app",
            "--host", self.ip, "--port", str(self.http_port),
            "--cluster-bind", self.bind, "--cluster-port", str(self.cluster_port),
        ]  # fmt: skip
        if self.advertise:
            command += ["--cluster-advertise", self.advertise]
        for seed in self.seeds:
            command += ["--seeds", seed]
        return command + list(self.extra)

    def start(self) -> HostNode:
        support = str(REPO / "tests" / "support")
        env = {**os.environ, "ALIGHT_CLUSTER_SECRET": SECRET, "PYTHONPATH": support}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                bufsize=0,
                start_new_session=True,
            )
        ready = self._read_ready(WAIT)
        self.name, self.address = ready.name, ready.cluster_address
        return self

    def _read_ready(self, wait: float) -> NodeReady:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + wait
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while True:
                for line in buffer.decode(errors="replace").splitlines():
                    ready = NodeReady.parse(line)
                    if ready is not None:
                        return ready
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise TimeoutError(f"node {self.base_name} did not start:\n{self.log()}")
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError(f"node {self.base_name} exited with {self.proc.wait()}:\n{self.log()}")
                buffer += chunk

    def log(self) -> str:
        """What the node logged so far (its stderr)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int:
        """SIGTERM (an orderly stop, SIGKILL after a while); its exit status."""
        kill_group(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode
