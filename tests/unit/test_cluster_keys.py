"""Cluster keys: deterministic derivation from the secret, where the secret comes from,
what is refused; and the ZAP decision (who the keys admit), as a pure function."""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq
from zmq.utils import z85

from alight.cluster._auth import USER_ID, zap_reply
from alight.cluster._keys import ENV_VAR, ClusterKeys, derive_keys, load_keys, load_secret
from alight.cluster.errors import BadSecret

SECRET = "correct horse battery staple"


def test_derivation_is_deterministic_and_a_valid_curve_keypair() -> None:
    keys = derive_keys(SECRET)
    assert keys == derive_keys(SECRET.encode())
    assert len(keys.public) == len(keys.secret) == 40
    assert zmq.curve_public(keys.secret) == keys.public
    assert keys.public_raw == z85.decode(keys.public)
    assert len(keys.public_raw) == 32


def test_different_secrets_give_different_keys() -> None:
    assert derive_keys(SECRET).public != derive_keys(SECRET + "!").public


def test_repr_never_shows_the_secret_key() -> None:
    keys = derive_keys(SECRET)
    assert keys.secret.decode() not in repr(keys)
    assert keys.public.decode() in repr(keys)


@pytest.mark.parametrize("secret", ["", "x" * 15, b"y" * 15])
def test_short_secrets_are_refused(secret: str | bytes) -> None:
    with pytest.raises(BadSecret, match="at least 16"):
        derive_keys(secret)
    with pytest.raises(BadSecret):
        load_secret(secret=secret)


def test_sixteen_bytes_is_enough() -> None:
    assert isinstance(derive_keys("x" * 16), ClusterKeys)


def test_secret_from_the_environment() -> None:
    assert load_secret(environ={ENV_VAR: SECRET}) == SECRET.encode()
    assert load_keys(environ={ENV_VAR: SECRET}) == derive_keys(SECRET)


def test_missing_secret_says_what_to_set() -> None:
    with pytest.raises(BadSecret, match=ENV_VAR):
        load_secret(environ={})


def test_explicit_secret_wins_over_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "cookie"
    path.write_bytes(b"f" * 20)
    path.chmod(0o600)
    assert load_secret(secret=SECRET, key_file=path, environ={ENV_VAR: "e" * 20}) == SECRET.encode()
    assert load_secret(key_file=path, environ={ENV_VAR: "e" * 20}) == b"f" * 20


def test_key_file_trailing_newline_is_stripped(tmp_path: Path) -> None:
    path = tmp_path / "cookie"
    path.write_bytes(SECRET.encode() + b"\n")
    path.chmod(0o600)
    assert load_keys(key_file=path) == derive_keys(SECRET)


def test_key_file_open_to_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cookie"
    path.write_bytes(SECRET.encode())
    path.chmod(0o644)
    with pytest.raises(BadSecret, match="chmod 600"):
        load_secret(key_file=path)


def test_missing_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadSecret, match="cannot read"):
        load_secret(key_file=tmp_path / "absent")


def test_short_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cookie"
    path.write_bytes(b"short\n")
    path.chmod(0o600)
    with pytest.raises(BadSecret, match="at least 16"):
        load_secret(key_file=path)


def _request(mechanism: bytes, *credentials: bytes) -> list[bytes]:
    return [b"1.0", b"7", b"alight.cluster", b"127.0.0.1", b"", mechanism, *credentials]


def test_zap_admits_only_the_cluster_key() -> None:
    keys = derive_keys(SECRET)
    other = derive_keys(SECRET + "?")
    assert zap_reply(_request(b"CURVE", keys.public_raw), keys.public_raw) == [
        b"1.0",
        b"7",
        b"200",
        b"OK",
        USER_ID.encode(),
        b"",
    ]
    assert zap_reply(_request(b"CURVE", other.public_raw), keys.public_raw)[2] == b"400"
    assert zap_reply(_request(b"NULL"), keys.public_raw)[2] == b"400"
    assert zap_reply(_request(b"PLAIN", b"user", keys.public_raw), keys.public_raw)[2] == b"400"


@pytest.mark.parametrize("request_frames", [[], [b"1.0"], [b"2.0", b"7", b"", b"", b"", b"CURVE", b"k"]])
def test_zap_malformed_requests_get_500(request_frames: list[bytes]) -> None:
    assert zap_reply(request_frames, derive_keys(SECRET).public_raw)[2] == b"500"
