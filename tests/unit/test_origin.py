"""Phoenix's check_origin (docs/protocol.md §1.5), as a pure function."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alight.transports.origin import OriginPolicy, check_origin, validate_origin_policy


def allowed(
    origin: str | None,
    policy: OriginPolicy,
    host: str = "example.com",
    request_host: str | None = None,
    scheme: str = "http",
) -> bool:
    return check_origin(origin, policy, host, request_host, scheme)


@pytest.mark.parametrize("policy", [True, False, "conn", ["//nothing.test"], lambda origin: False])
def test_a_missing_origin_is_always_allowed(policy: OriginPolicy) -> None:
    assert allowed(None, policy) is True


def test_false_allows_everything() -> None:
    assert allowed("https://evil.test", False) is True
    assert allowed("null", False) is True


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("https://example.com", True),
        ("http://example.com:4000", True),
        ("wss://EXAMPLE.com", True),
        ("https://www.example.com", False),
        ("https://example.com.evil.test", False),
        ("https://evil.test", False),
        ("null", False),
        ("", False),
        ("example.com", False),
        ("http://[::1", False),
        ("http://example.com:99999", False),
    ],
)
def test_true_compares_only_the_host_with_the_endpoint(origin: str, expected: bool) -> None:
    assert allowed(origin, True) is expected


PATTERNS = ["https://example.com", "//localhost:4000", "//*.example.org", "http://other.test:8080"]


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("https://example.com", True),
        ("https://example.com:443", True),
        ("https://example.com:8443", False),
        ("http://example.com", False),
        ("http://localhost:4000", True),
        ("https://localhost:4000", True),
        ("http://localhost:4001", False),
        ("http://localhost", False),
        ("https://example.org", True),
        ("http://a.example.org:1234", True),
        ("https://a.b.example.org", True),
        ("https://badexample.org", False),
        ("http://other.test:8080", True),
        ("http://other.test", False),
        ("null", False),
    ],
)
def test_list_of_patterns(origin: str, expected: bool) -> None:
    assert allowed(origin, PATTERNS) is expected


def test_pattern_without_scheme_or_port_is_a_host_wildcard() -> None:
    assert allowed("ftp://example.com:21", ["//example.com"]) is True
    assert allowed("https://example.com:1", ("//example.com",)) is True


@pytest.mark.parametrize(
    ("origin", "request_host", "scheme", "expected"),
    [
        ("http://localhost:4000", "localhost:4000", "http", True),
        ("https://app.test", "app.test", "https", True),
        ("https://app.test", "app.test:443", "https", True),
        ("https://app.test", "app.test", "wss", True),
        ("http://app.test", "app.test", "https", False),
        ("http://app.test:4000", "app.test:4001", "http", False),
        ("http://other.test", "app.test", "http", False),
        ("http://[::1]:4000", "[::1]:4000", "http", True),
        ("http://app.test", None, "http", False),
        ("null", "app.test", "http", False),
    ],
)
def test_conn_compares_scheme_host_and_port_with_the_request(
    origin: str, request_host: str | None, scheme: str, expected: bool
) -> None:
    assert allowed(origin, "conn", request_host=request_host, scheme=scheme) is expected


def test_a_callable_gets_the_origin_as_sent() -> None:
    seen: list[str] = []

    def predicate(origin: str) -> bool:
        seen.append(origin)
        return origin.endswith(".trusted.test")

    assert allowed("https://a.trusted.test", predicate) is True
    assert allowed("https://evil.test", predicate) is False
    assert seen == ["https://a.trusted.test", "https://evil.test"]


@pytest.mark.parametrize("policy", ["yes", 1, None, ["example.com"], ["//"], [""], [3]])
def test_invalid_policies_are_refused_up_front(policy: Any) -> None:
    with pytest.raises(ValueError, match="check_origin"):
        validate_origin_policy(policy)
    with pytest.raises(ValueError, match="check_origin"):
        allowed("https://example.com", policy)


@pytest.mark.parametrize("policy", [True, False, "conn", [], PATTERNS, lambda origin: True])
def test_valid_policies(policy: OriginPolicy) -> None:
    validate_origin_policy(policy)


@settings(max_examples=150, deadline=None)
@given(origin=st.text(max_size=60), policy=st.sampled_from([True, "conn", PATTERNS]))
def test_any_origin_gives_a_bool(origin: str, policy: OriginPolicy) -> None:
    assert allowed(origin, policy, request_host="example.com") in (True, False)
