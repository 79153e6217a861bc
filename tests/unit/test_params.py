"""Query strings parsed with Plug's rules (docs/protocol.md §1.2)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alight.transports.errors import InvalidQuery
from alight.transports.params import MAX_DEPTH, MAX_PARAMS, parse_params


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {}),
        ("user_id=u1&token=abc&vsn=2.0.0", {"user_id": "u1", "token": "abc", "vsn": "2.0.0"}),
        ("token=bad&vsn=2.0.0&token=XYZ", {"token": "XYZ", "vsn": "2.0.0"}),
        ("a[b]=1", {"a": {"b": "1"}}),
        ("a[b][c]=1&a[b][d]=2&a[e]=3", {"a": {"b": {"c": "1", "d": "2"}, "e": "3"}}),
        ("a[0]=x", {"a": {"0": "x"}}),
        ("tags%5B0%5D=a&tags%5B1%5D=b", {"tags": {"0": "a", "1": "b"}}),
        ("user%5Bid%5D=1", {"user": {"id": "1"}}),
        ("a[]=x&a[]=y", {"a": ["x", "y"]}),
        ("a[]=x&a[]=y&a[]=x", {"a": ["x", "y", "x"]}),
        ("a", {"a": ""}),
        ("a&b=", {"a": "", "b": ""}),
        ("=x", {"": "x"}),
        ("user_id=u1&vsn=2.0.0&", {"user_id": "u1", "vsn": "2.0.0"}),
        ("&&a=1&&", {"a": "1"}),
        ("a=b=c", {"a": "b=c"}),
        ("q=hello+world", {"q": "hello world"}),
        ("q=a%2Bb%20c", {"q": "a+b c"}),
        ("q=%E2%9C%93", {"q": "\u2713"}),
        ("q=100%&r=%zz&s=%4", {"q": "100%", "r": "%zz", "s": "%4"}),
        ("a+b=1", {"a b": "1"}),
        ("[a]=1", {"[a]": "1"}),
        ("a[b=1", {"a[b": "1"}),
        ("a]=1", {"a]": "1"}),
        ("a[b]c]=1", {"a": {"b]c": "1"}}),
        ("a[b]]=1", {"a": {"b]": "1"}}),
        ("a=undefined", {"a": "undefined"}),
    ],
)
def test_plug_rules(query: str, expected: dict[str, Any]) -> None:
    assert parse_params(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # The last parameter written decides the type, whatever came before.
        ("a=1&a[b]=2", {"a": {"b": "2"}}),
        ("a[b]=2&a=1", {"a": "1"}),
        ("a[]=x&a[0]=y", {"a": {"0": "y"}}),
        ("a[0]=y&a[]=x", {"a": ["x"]}),
        # Plug's quirk: a container seen before is not re-linked into its parent.
        ("a[b]=2&a=1&a[c]=3", {"a": "1"}),
        ("a[][b]=1&a[][c]=2", {"a": [{"b": "1", "c": "2"}]}),
    ],
)
def test_plug_edge_cases(query: str, expected: dict[str, Any]) -> None:
    assert parse_params(query) == expected


def test_bytes_input() -> None:
    assert parse_params(b"a=%C3%A9&b=1") == {"a": "é", "b": "1"}


def test_invalid_utf8_is_an_error() -> None:
    with pytest.raises(InvalidQuery, match="UTF-8"):
        parse_params("a=%FF")
    with pytest.raises(InvalidQuery, match="UTF-8"):
        parse_params(b"a\xff=1")
    with pytest.raises(InvalidQuery):
        parse_params("a=\ud800")


def test_too_many_params() -> None:
    assert len(parse_params("&".join(f"k{n}=v" for n in range(MAX_PARAMS)))) == MAX_PARAMS
    with pytest.raises(InvalidQuery, match="more than 1000"):
        parse_params("&".join(f"k{n}=v" for n in range(MAX_PARAMS + 1)))
    # Empty segments do not count; repeated keys do.
    assert parse_params("&" * 5000 + "a=1") == {"a": "1"}
    with pytest.raises(InvalidQuery):
        parse_params("a=1&" * (MAX_PARAMS + 1))


def test_too_deep() -> None:
    ok = "a" + "[x]" * MAX_DEPTH + "=1"
    value: Any = parse_params(ok)["a"]
    for _ in range(MAX_DEPTH):
        value = value["x"]
    assert value == "1"
    with pytest.raises(InvalidQuery, match="deeper than 32"):
        parse_params("a" + "[x]" * (MAX_DEPTH + 1) + "=1")
    with pytest.raises(InvalidQuery, match="deeper than 32"):
        parse_params("a" + "[]" * 10_000 + "=1")


def test_custom_bounds() -> None:
    with pytest.raises(InvalidQuery):
        parse_params("a=1&b=2", max_params=1)
    with pytest.raises(InvalidQuery):
        parse_params("a[b][c]=1", max_depth=1)


def test_invalid_query_error_is_a_value_error() -> None:
    assert issubclass(InvalidQuery, ValueError)


def leaves_are_strings(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and leaves_are_strings(v) for k, v in value.items())
    if isinstance(value, list):
        return all(leaves_are_strings(v) for v in value)
    return isinstance(value, str)


query_chars = st.sampled_from([*"ab01=&[]%+2FE9", "%5B", "%5D", "%26", "%3D", "%C3%A9", "%FF", "é"])


@settings(max_examples=200, deadline=None)
@given(query=st.lists(query_chars, max_size=60).map("".join) | st.text(max_size=60) | st.binary(max_size=60))
def test_never_raises_anything_but_invalid_query_error(query: str | bytes) -> None:
    try:
        params = parse_params(query)
    except InvalidQuery:
        return
    assert leaves_are_strings(params)


@settings(max_examples=100, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from(["a", "b", "tok en", "é"]), st.text(max_size=8)), max_size=8))
def test_plain_keys_last_value_wins(pairs: list[tuple[str, str]]) -> None:
    from urllib.parse import quote_plus

    query = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs)
    try:
        expected = dict(pairs)
    except ValueError:  # pragma: no cover
        return
    try:
        assert parse_params(query) == expected
    except InvalidQuery:
        assert any("\ud800" <= c <= "\udfff" for _, v in pairs for c in v)
