"""Cluster addresses: where a node binds, what it advertises, how it is named.

A node *binds* its cluster port on one address (`DEFAULT_HOST`, loopback, unless told
otherwise) and *advertises* another in its `Hello`: the address its peers connect to.
They differ behind NAT, in containers (bind ``0.0.0.0``, advertise the pod's address)
and on hosts with several interfaces. A wildcard bind has no address a peer could use,
so it must be given one to advertise (`advertised` raises `AddressError`).

Node names are Erlang's ``name@host``: a bare name (``web1``) takes the host its peers
know it by (`node_name`), so that names stay unique across machines.

Pure functions of strings, no I/O (names are not resolved here: ZeroMQ resolves a DNS
name when it connects).
"""

from __future__ import annotations

import ipaddress
from typing import Final

from .errors import AddressError

__all__ = [
    "DEFAULT_HOST",
    "WILDCARDS",
    "advertised",
    "host_of",
    "is_loopback",
    "is_wildcard",
    "node_name",
    "seed_address",
    "split_host_port",
    "tcp_address",
]

DEFAULT_HOST: Final = "127.0.0.1"
"""Where cluster sockets bind unless told otherwise: loopback, so that binding an
address other machines reach is an explicit choice."""

WILDCARDS: Final = frozenset({"0.0.0.0", "::", "*", ""})
"""Bind addresses meaning every interface: never an address to advertise."""


def is_wildcard(host: str) -> bool:
    return host.strip("[]") in WILDCARDS


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; False for any other name or address."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).version == 6
    except ValueError:
        return False


def tcp_address(host: str, port: int) -> str:
    """``tcp://host:port`` as ZeroMQ reads it (an IPv6 address in brackets)."""
    host = host.strip("[]")
    if _is_ipv6(host) or host == "::":
        host = f"[{host}]"
    return f"tcp://{host}:{port}"


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[V6]`` or ``[V6]:PORT`` (a bare IPv6 address has no
    port); `AddressError` for anything else."""
    text = text.strip()
    if text.startswith("tcp://"):
        text = text[len("tcp://") :]
    host, port_text, separated = text, "", False
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and text[end + 1] != ":"):
            raise AddressError(f"{text!r} is not HOST, HOST:PORT or [IPv6]:PORT")
        host, port_text, separated = text[1:end], text[end + 2 :], end + 1 < len(text)
    elif text.count(":") == 1:
        (host, port_text), separated = text.split(":"), True
    elif text.count(":") > 1 and not _is_ipv6(text):
        raise AddressError(f"{text!r} is not HOST, HOST:PORT or [IPv6]:PORT")
    if not host or any(c.isspace() or c in "/?#@" for c in host):
        raise AddressError(f"{text!r} has no valid host")
    if not port_text and not separated:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise AddressError(f"{text!r}: the port must be 1-65535")
    return host, int(port_text)


def host_of(address: str) -> str:
    """The host of a ``tcp://host:port`` address (without brackets)."""
    return split_host_port(address, 0)[0]


def advertised(bind_host: str, port: int, advertise: str | None) -> str:
    """The address peers are told to connect to: ``advertise`` (``HOST`` or
    ``HOST:PORT``; the port defaults to the bound ``port``) or, without it, the bound
    address. `AddressError` if the bind address is a wildcard and nothing is advertised."""
    if advertise:
        host, advertised_port = split_host_port(advertise, port)
        if is_wildcard(host):
            raise AddressError(f"cannot advertise {advertise!r}: peers need an address they can connect to")
        return tcp_address(host, advertised_port)
    if is_wildcard(bind_host):
        raise AddressError(
            f"the cluster port is bound on every interface ({bind_host or '*'}): say which address peers "
            "should connect to (--cluster-advertise HOST, or advertise= in Python)"
        )
    return tcp_address(bind_host, port)


def seed_address(text: str) -> str:
    """A seed as ``tcp://host:port`` from ``tcp://HOST:PORT`` or ``HOST:PORT``;
    `AddressError` without a port (a cluster port has no default)."""
    host, port = split_host_port(text, 0)
    if port == 0:
        raise AddressError(f"seed {text!r} has no port: give it as HOST:PORT")
    return tcp_address(host, port)


def node_name(name: str, host: str) -> str:
    """``name`` as given if it holds an ``@``, else ``name@host`` (Erlang's long names:
    ``web1`` on 10.0.0.5 is ``web1@10.0.0.5``). `AddressError` for an empty part."""
    base, at, given = name.partition("@")
    if not base or (at and not given):
        raise AddressError(f"node name {name!r} must be NAME or NAME@HOST")
    return name if at else f"{base}@{host.strip('[]')}"
