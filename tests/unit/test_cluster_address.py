"""Cluster addresses (`alight.cluster.address`): bind, advertise, seeds, node names."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alight.cluster import AddressError
from alight.cluster.address import (
    advertised,
    host_of,
    is_loopback,
    is_wildcard,
    node_name,
    seed_address,
    split_host_port,
    tcp_address,
)


def test_advertise_defaults_to_the_bound_address() -> None:
    assert advertised("10.0.0.5", 4370, None) == "tcp://10.0.0.5:4370"
    assert advertised("0.0.0.0", 4370, "10.0.0.5") == "tcp://10.0.0.5:4370"
    assert advertised("0.0.0.0", 4370, "nat.example:9000") == "tcp://nat.example:9000"
    assert advertised("::", 4370, "fd00::5") == "tcp://[fd00::5]:4370"


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::", "*", "[::]"])
def test_a_wildcard_bind_needs_an_address_to_advertise(wildcard: str) -> None:
    assert is_wildcard(wildcard)
    with pytest.raises(AddressError, match="--cluster-advertise"):
        advertised(wildcard, 4370, None)
    with pytest.raises(AddressError, match="cannot advertise"):
        advertised("10.0.0.5", 4370, wildcard if wildcard != "[::]" else "[::]:1")


@pytest.mark.parametrize(
    "text", ["", ":4370", "host:", "host:0", "host:70000", "host:port", "[::1", "[::1]x", "a b:1", "u@h:1", "1:2:3:z"]
)
def test_malformed_addresses_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(AddressError):
        split_host_port(text, 4370)


def test_seeds_need_a_port() -> None:
    assert seed_address("10.0.0.1:4370") == "tcp://10.0.0.1:4370"
    assert seed_address("tcp://[fd00::1]:4370") == "tcp://[fd00::1]:4370"
    with pytest.raises(AddressError, match="no port"):
        seed_address("10.0.0.1")


def test_bare_node_names_take_the_host() -> None:
    assert node_name("web1", "10.0.0.5") == "web1@10.0.0.5"
    assert node_name("web1", "[fd00::5]") == "web1@fd00::5"
    assert node_name("web1@box", "10.0.0.5") == "web1@box"
    for bad in ("", "@box", "web1@"):
        with pytest.raises(AddressError):
            node_name(bad, "10.0.0.5")


def test_loopback() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["10.0.0.5", "0.0.0.0", "example.org"]))


hosts = st.one_of(
    st.ip_addresses().map(str),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True),
)


@given(hosts, st.integers(1, 65535))
def test_an_address_reads_back_as_it_was_written(host: str, port: int) -> None:
    address = tcp_address(host, port)
    assert split_host_port(address, 1) == (host, port)
    assert host_of(address) == host
    assert seed_address(address) == address


@given(st.text(max_size=40), st.integers(1, 65535))
def test_any_text_is_an_address_or_an_address_error(text: str, port: int) -> None:
    try:
        host, got = split_host_port(text, port)
    except AddressError:
        return
    assert host
    assert 0 < got < 65536
    assert not any(c.isspace() for c in host)
    if ":" in host:  # only an IPv6 address may hold colons
        ipaddress.IPv6Address(host)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--cluster-bind", "0.0.0.0"], "--cluster-advertise"),
        (["--cluster-advertise", "0.0.0.0"], "cannot advertise"),
        (["--seeds", "10.0.0.1"], "no port"),
        (["--seeds", "tcp://10.0.0.1:4370,bad host:1"], "no valid host"),
    ],
)
def test_alight_node_refuses_unusable_addresses_before_starting(args: list[str], says: str) -> None:
    from click.testing import CliRunner

    from alight.cli import main

    result = CliRunner().invoke(main, ["node", "--app", "examples.reference:app", *args])
    assert result.exit_code == 2, result.output
    assert says in result.output


def test_discover_option() -> None:
    from alight.cluster import DnsPoll, Seeds, parse_discovery

    assert parse_discovery("dns:alight.default.svc", 4370) == DnsPoll("alight.default.svc", 4370)
    assert parse_discovery("dns:alight.default.svc:4000", 4370, 1.0) == DnsPoll("alight.default.svc", 4000, 1.0)
    assert parse_discovery("seeds:10.0.0.1:4370, 10.0.0.2:4370", 0) == Seeds(
        ("tcp://10.0.0.1:4370", "tcp://10.0.0.2:4370")
    )
    for bad, says in [
        ("dns:alight.svc", "give the cluster port"),  # cluster port 0: no default
        ("mdns:x", "expected dns:"),
        ("seeds:", "lists no seed"),
        ("dns:a b", "no valid host"),
    ]:
        with pytest.raises(AddressError, match=says):
            parse_discovery(bad, 0)


def test_a_dns_lookup_answers_addresses_or_a_discovery_error() -> None:
    import asyncio

    from alight.cluster import DiscoveryError, DnsPoll

    found = asyncio.run(DnsPoll("localhost", 4370).addresses())
    assert "tcp://127.0.0.1:4370" in found
    assert found <= {"tcp://127.0.0.1:4370", "tcp://[::1]:4370"}
    with pytest.raises(DiscoveryError, match="looking up"):
        asyncio.run(DnsPoll("no such host!", 4370, timeout=2.0).addresses())
