"""How a node finds the other nodes of its cluster: static seeds, or a DNS name polled.

A `Distribution` given a ``discovery`` asks it for the cluster's addresses when it
starts and then every `Discovery.interval` seconds, and hands each answer to its
membership (`_membership.Membership.discovered`): an address that appears is greeted,
one that disappears is not retried once its node is down. This is libcluster's
``Cluster.Strategy.DNSPoll`` for a Kubernetes headless service (its A/AAAA records are
the pods' addresses, each node's cluster port is the same) and its ``Epmd`` strategy
(a static list).

- `Seeds`: a fixed list (what ``--seeds`` gives); never changes.
- `DnsPoll`: the A/AAAA records of a name through the system resolver
  (``getaddrinfo``: /etc/hosts, then DNS, as every other program on the machine), each
  an address ``tcp://IP:PORT``. A lookup that fails, times out or answers nothing
  raises `DiscoveryError`; the node logs it, counts it and keeps what it knew (a DNS
  outage must not look like every peer leaving).

`parse_discovery` reads the ``--discover`` option: ``dns:NAME[:PORT]`` or
``seeds:ADDR,ADDR``.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Final, Protocol

from .address import seed_address, split_host_port, tcp_address
from .errors import AddressError, DiscoveryError

__all__ = ["DNS_INTERVAL", "DnsPoll", "Discovery", "Seeds", "parse_discovery"]

DNS_INTERVAL: Final = 5.0
"""Seconds between two lookups of a `DnsPoll` (libcluster's DNSPoll: 5 s)."""
LOOKUP_TIMEOUT: Final = 5.0
"""Seconds a lookup may take before it counts as failed."""
MAX_ADDRESSES: Final = 1024
"""At most this many addresses are taken from one answer (the rest are ignored and
the answer is logged as oversize): a cluster of more nodes needs another strategy."""


class Discovery(Protocol):
    """Where the addresses of a cluster's nodes come from."""

    @property
    def interval(self) -> float | None:
        """Seconds between two calls of `addresses` (None: call it once)."""
        ...

    async def addresses(self) -> frozenset[str]:
        """The cluster's addresses now (``tcp://host:port``), this node's own may be among
        them; `DiscoveryError` if they cannot be known now."""
        ...

    def describe(self) -> str:
        """What is asked, for logs: ``dns:alight.default.svc:4370``."""
        ...


@dataclass(frozen=True, slots=True)
class Seeds:
    """A fixed list of addresses (libcluster's Epmd strategy)."""

    seeds: tuple[str, ...]

    @property
    def interval(self) -> float | None:
        return None

    async def addresses(self) -> frozenset[str]:
        return frozenset(self.seeds)

    def describe(self) -> str:
        return "seeds:" + ",".join(self.seeds)


@dataclass(frozen=True, slots=True)
class DnsPoll:
    """The A/AAAA records of ``name``, each ``tcp://IP:port``, every ``every`` seconds."""

    name: str
    port: int
    every: float = DNS_INTERVAL
    timeout: float = LOOKUP_TIMEOUT

    @property
    def interval(self) -> float | None:
        return self.every

    async def addresses(self) -> frozenset[str]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                answer = await loop.getaddrinfo(self.name, self.port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise DiscoveryError(f"looking up {self.name} took more than {self.timeout} s") from None
        except (OSError, UnicodeError) as error:  # socket.gaierror is an OSError
            raise DiscoveryError(f"looking up {self.name} failed: {error}") from None
        found = sorted({str(sockaddr[0]) for *_, sockaddr in answer if sockaddr})
        if not found:
            raise DiscoveryError(f"{self.name} has no A or AAAA record")
        if len(found) > MAX_ADDRESSES:
            raise DiscoveryError(f"{self.name} has {len(found)} records, more than {MAX_ADDRESSES}")
        return frozenset(tcp_address(ip.split("%", 1)[0], self.port) for ip in found)

    def describe(self) -> str:
        return f"dns:{self.name}:{self.port}"


def parse_discovery(text: str, default_port: int, interval: float = DNS_INTERVAL) -> Discovery:
    """``dns:NAME[:PORT]`` (the port defaults to ``default_port``, this node's cluster
    port) or ``seeds:ADDR[,ADDR...]``; `AddressError` for anything else."""
    kind, _, rest = text.partition(":")
    if kind == "dns":
        host, port = split_host_port(rest, default_port)
        if not port:
            raise AddressError(f"--discover {text!r}: give the cluster port, dns:NAME:PORT")
        if interval <= 0:
            raise AddressError("the discovery interval must be positive")
        return DnsPoll(host, port, interval)
    if kind == "seeds":
        seeds = tuple(seed_address(seed) for seed in rest.split(",") if seed.strip())
        if not seeds:
            raise AddressError(f"--discover {text!r} lists no seed")
        return Seeds(seeds)
    raise AddressError(f"--discover {text!r}: expected dns:NAME[:PORT] or seeds:ADDR,...")
