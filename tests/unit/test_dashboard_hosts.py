"""`host_allowed`: the ``Host`` check that keeps DNS-rebinding pages off the dashboard."""

from __future__ import annotations

import pytest

from alight.dashboard.dashboard import host_allowed


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:4000",
        "127.0.0.1",
        "[::1]:4000",
        "10.1.2.3:80",
        "localhost:4000",
        "LOCALHOST",
        "localhost.:4000",
        "admin.example.com:4000",
        "Admin.Example.Com",
        None,  # no Host at all: not a browser
    ],
)
def test_addresses_localhost_and_the_configured_names_are_allowed(host: str | None) -> None:
    assert host_allowed(host, ["admin.example.com"])


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:4000",
        "evil.example",
        "localhost.evil.example",
        "127.0.0.1.evil.example",
        "admin.example.com.evil.example",
        "",
        "[::1",
        "user@localhost:4000",
        "localhost:notaport/x",
    ],
)
def test_any_other_name_is_refused(host: str) -> None:
    assert not host_allowed(host, ["admin.example.com"])
