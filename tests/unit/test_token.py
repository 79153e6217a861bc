"""Signed, expiring tokens (Phoenix.Token), with an injected clock."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alight.channels.errors import ChannelError, ExpiredToken, InvalidToken
from alight.channels.token import DEFAULT_MAX_AGE, sign, verify

SECRET = "s" * 64
SALT = "user socket"
T0 = 1_700_000_000.0


@pytest.mark.parametrize("data", [{"user_id": 7}, "u1", 42, [1, "x", None], None, {"nested": {"a": [True]}}])
def test_round_trip(data: Any) -> None:
    token = sign(SECRET, SALT, data, now=T0)
    assert verify(SECRET, SALT, token, now=T0 + 1) == data


def test_tokens_are_url_safe_strings() -> None:
    token = sign(SECRET, SALT, {"topic": "phx:lp:" + "x" * 50}, now=T0)
    assert isinstance(token, str)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def test_bytes_secret_salt_and_token() -> None:
    token = sign(SECRET.encode(), SALT.encode(), "x", now=T0)
    assert verify(SECRET, SALT, token.encode(), now=T0) == "x"


def test_expiry_is_inclusive_of_max_age() -> None:
    token = sign(SECRET, SALT, "x", now=T0)
    assert verify(SECRET, SALT, token, max_age=60, now=T0 + 60) == "x"
    with pytest.raises(ExpiredToken, match="expired"):
        verify(SECRET, SALT, token, max_age=60, now=T0 + 61)


def test_default_max_age_is_one_day() -> None:
    token = sign(SECRET, SALT, "x", now=T0)
    assert DEFAULT_MAX_AGE == 86_400
    assert verify(SECRET, SALT, token, now=T0 + 86_400) == "x"
    with pytest.raises(ExpiredToken):
        verify(SECRET, SALT, token, now=T0 + 86_401)


def test_max_age_none_never_expires() -> None:
    token = sign(SECRET, SALT, "x", now=T0)
    assert verify(SECRET, SALT, token, max_age=None, now=T0 + 10 * 365 * 86_400) == "x"


def test_a_token_from_the_future_is_accepted_like_phoenix() -> None:
    token = sign(SECRET, SALT, "x", now=T0 + 5)
    assert verify(SECRET, SALT, token, max_age=60, now=T0) == "x"


def test_the_real_clock_is_used_by_default() -> None:
    assert verify(SECRET, SALT, sign(SECRET, SALT, "x")) == "x"


def test_an_expired_token_is_an_invalid_token_and_a_channel_error() -> None:
    assert issubclass(ExpiredToken, InvalidToken)
    assert issubclass(InvalidToken, ChannelError)


@pytest.mark.parametrize("token", [None, "", b""])
def test_missing_token(token: str | bytes | None) -> None:
    with pytest.raises(InvalidToken, match="missing"):
        verify(SECRET, SALT, token)


def test_wrong_secret_or_salt_is_invalid() -> None:
    token = sign(SECRET, SALT, "x", now=T0)
    with pytest.raises(InvalidToken):
        verify("t" * 64, SALT, token, now=T0)
    with pytest.raises(InvalidToken):
        verify(SECRET, "other salt", token, now=T0)


def test_tampering_is_detected() -> None:
    token = sign(SECRET, SALT, {"user_id": 1}, now=T0)
    payload, timestamp, signature = token.split(".")
    forged = sign("attacker" * 8, SALT, {"user_id": 2}, now=T0).split(".")[0]
    other_time = timestamp[:-1] + ("B" if timestamp.endswith("A") else "A")
    for bad in (
        f"{forged}.{timestamp}.{signature}",
        f"{payload}.{other_time}.{signature}",
        f"{payload}.{timestamp}.{signature[:-2]}",
        f"{payload}.{signature}",
        payload,
    ):
        with pytest.raises(InvalidToken) as info:
            verify(SECRET, SALT, bad, now=T0)
        assert type(info.value) is InvalidToken


def test_a_tampered_expired_token_is_invalid_not_expired() -> None:
    token = sign(SECRET, SALT, "x", now=T0)
    with pytest.raises(InvalidToken) as info:
        verify(SECRET, SALT, token[:-1] + ("A" if token[-1] != "A" else "B"), max_age=1, now=T0 + 100)
    assert type(info.value) is InvalidToken


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign("", SALT, "x")


def test_unserializable_data_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        sign(SECRET, SALT, {"x": object()})


def test_payload_is_json_never_pickle() -> None:
    import base64
    import json

    payload = sign(SECRET, SALT, {"a": 1}, now=T0).split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))) == {"a": 1}


@settings(max_examples=100, deadline=None)
@given(token=st.text(max_size=120) | st.binary(max_size=120))
def test_arbitrary_tokens_only_raise_invalid_token(token: str | bytes) -> None:
    with pytest.raises(InvalidToken):
        verify(SECRET, SALT, token, now=T0)
