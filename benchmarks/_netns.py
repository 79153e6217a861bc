"""Hosts for multi-host tests and the nemesis: network namespaces on a bridge, or loopback.

``Hosts(3, use_netns=True)`` makes three namespaces, each one host with its own
address on a bridge in this namespace (which is the hosts' "outside", at ``.254``);
`Hosts.prefix` runs a command on a host (``ip netns exec``); `Hosts.close` removes
everything (a namespace takes its veth, routes, qdiscs and nftables with it). The
faults (`Hosts.cut`, `Hosts.degrade`) change one host's network. Without namespaces
every host is 127.0.0.1 and only process faults make sense. `netns_possible` says
why namespaces cannot be made here (not root, iproute2 or nftables missing).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["Hosts", "netns_possible"]


_serial = itertools.count()
"""Hosts made by this process so far: two sets alive at once get different names."""

NETNS_ETC = Path("/etc/netns")
"""``ip netns exec NS`` bind-mounts the files of ``/etc/netns/NS/`` over ``/etc/``."""


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=10)


def netns_possible(faults: bool = True) -> str | None:
    """None if namespaces can be made here (with ``faults``: and network faults
    applied, which needs ``tc`` and ``nft``), else why not."""
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    if faults and (shutil.which("tc") is None or shutil.which("nft") is None):
        return "iproute2 (tc) or nftables (nft) is not installed"
    probe = f"alight-probe-{os.getpid()}"
    try:
        _run("ip", "netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as error:
        return f"ip netns add failed: {error}"
    _run("ip", "netns", "delete", probe)
    return None


class Hosts:
    """Where the nodes run. With namespaces: ``alight-<pid>-<i>`` each with one veth to
    a bridge ``alb<pid>`` in this namespace, node ``i`` at ``10.77.<k>.<i+1>``, this
    side at ``.254``; everything is removed by `close` (namespaces take their veths,
    routes and qdiscs with them)."""

    def __init__(self, count: int, use_netns: bool) -> None:
        self.count = count
        self.netns = use_netns
        self.tag = (os.getpid() + 997 * next(_serial)) % 10_000
        self.subnet = f"10.77.{100 + self.tag % 100}"
        self.bridge = f"alb{self.tag}"
        self.names = [f"alight-{self.tag}-{i}" for i in range(count)]
        self.cuts: set[tuple[int, int]] = set()
        self.degraded: set[int] = set()
        self.netem = False
        if use_netns:
            try:
                self._make()
                self.netem = self._has_netem()
            except BaseException:
                self.close()
                raise

    def _has_netem(self) -> bool:
        try:
            _run(
                "ip", "netns", "exec", self.names[0], "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"
            )
        except subprocess.CalledProcessError:
            return False  # "Specified qdisc kind is unknown": a kernel without sch_netem
        _run("ip", "netns", "exec", self.names[0], "tc", "qdisc", "del", "dev", "lo", "root")
        return True

    def address(self, index: int) -> str:
        return f"{self.subnet}.{index + 1}" if self.netns else "127.0.0.1"

    def prefix(self, index: int) -> list[str]:
        return ["ip", "netns", "exec", self.names[index]] if self.netns else []

    def write_hosts(self, lines: list[str]) -> None:
        """Every host's ``/etc/hosts`` is ``lines`` (plus localhost) from now on: the
        resolver the nodes see (``getaddrinfo`` reads it at each lookup). Written in
        place, so that processes already running see the change; the files exist from
        the start (`_make`), as ``ip netns exec`` mounts them only if they do."""
        text = "\n".join(["127.0.0.1 localhost", "::1 localhost", *lines]) + "\n"
        for ns in self.names:
            with (NETNS_ETC / ns / "hosts").open("r+") as file:
                file.truncate(0)
                file.write(text)

    def _make(self) -> None:
        for ns in self.names:  # left by an earlier run that was killed
            with contextlib.suppress(subprocess.CalledProcessError):
                _run("ip", "netns", "delete", ns)
        with contextlib.suppress(subprocess.CalledProcessError):
            _run("ip", "link", "delete", self.bridge)
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        for index, ns in enumerate(self.names):
            _run("ip", "netns", "add", ns)
            (NETNS_ETC / ns).mkdir(parents=True, exist_ok=True)
            (NETNS_ETC / ns / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
            outside, inside = f"alv{self.tag}x{index}", f"alv{self.tag}y{index}"
            _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
            _run("ip", "link", "set", inside, "netns", ns)
            _run("ip", "link", "set", outside, "master", self.bridge)
            _run("ip", "link", "set", outside, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "-n", ns, "link", "set", inside, "name", "eth0")
            _run("ip", "-n", ns, "addr", "add", f"{self.address(index)}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")

    # -- network faults (namespaces only) --

    def cut(self, src: int, dst: int) -> None:
        """Packets from node ``src`` to node ``dst`` vanish (a blackhole route)."""
        _run("ip", "-n", self.names[src], "route", "add", "blackhole", f"{self.address(dst)}/32")
        self.cuts.add((src, dst))

    def heal_cut(self, src: int, dst: int) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            _run("ip", "-n", self.names[src], "route", "del", "blackhole", f"{self.address(dst)}/32")
        self.cuts.discard((src, dst))

    def degrade(self, index: int, loss: int, delay_ms: int) -> str:
        """Node ``index``'s outgoing packets: ``loss`` % lost, up to ``delay_ms`` late.
        With ``tc netem`` (if this kernel has it) the delay varies, which reorders;
        without, nftables drops at random and a ``tbf`` rate limit queues packets up to
        ``delay_ms`` (no reordering). Returns what was done, for the history."""
        ns = self.names[index]
        if self.netem:
            _run(
                "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root", "netem",
                "loss", f"{loss}%", "delay", f"{delay_ms}ms", f"{delay_ms // 2}ms", "reorder", "25%", "50%",
            )  # fmt: skip
            how = f"netem loss {loss}% delay {delay_ms}±{delay_ms // 2} ms, reordering"
        else:
            _run("ip", "netns", "exec", ns, "nft", "add", "table", "inet", "alight_faults")
            _run(
                "ip", "netns", "exec", ns, "nft", "add", "chain", "inet", "alight_faults", "out",
                "{ type filter hook output priority 0; }",
            )  # fmt: skip
            _run(
                "ip", "netns", "exec", ns, "nft", "add", "rule", "inet", "alight_faults", "out",
                "numgen", "random", "mod", "100", "<", str(loss), "drop",
            )  # fmt: skip
            _run(
                "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf",
                "rate", "256kbit", "burst", "8kb", "latency", f"{delay_ms}ms",
            )  # fmt: skip
            how = f"nft loss {loss}%, tbf 256 kbit/s queueing up to {delay_ms} ms (no netem: no reordering)"
        self.degraded.add(index)
        return how

    def heal_degraded(self, index: int) -> None:
        ns = self.names[index]
        with contextlib.suppress(subprocess.CalledProcessError):
            _run("ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "eth0", "root")
        if not self.netem:
            with contextlib.suppress(subprocess.CalledProcessError):
                _run("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "alight_faults")
        self.degraded.discard(index)

    def close(self) -> None:
        if not self.netns:
            return
        for ns in self.names:
            with contextlib.suppress(subprocess.CalledProcessError, OSError):
                _run("ip", "netns", "delete", ns)
            shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            _run("ip", "link", "delete", self.bridge)
