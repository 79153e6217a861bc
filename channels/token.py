"""Signed, expiring tokens: the equivalent of ``Phoenix.Token``.

``sign(secret, salt, data)`` gives a URL-safe string that carries ``data`` (any JSON
value) and the time it was signed, authenticated with HMAC-SHA256 under a key derived
from ``secret`` and ``salt``. ``verify(secret, salt, token, max_age=...)`` gives the
data back, or raises `InvalidToken` (missing, forged, tampered, malformed, or signed
with another secret or salt) or `ExpiredToken` (genuine but older than ``max_age``).

Tokens are signed, not encrypted: anyone holding one can read its data. The
cryptography is ``itsdangerous`` (``URLSafeTimedSerializer``, JSON payloads: nothing
is ever unpickled); the format is itsdangerous's ``payload.timestamp.signature``, not
Phoenix's ``SFMyNTY...``, which clients treat as opaque anyway.

Timestamps are whole seconds of wall-clock (Unix) time, because a token signed on
one node is verified on another; ``now`` may be injected for tests. As in Phoenix, a
token "from the future" (clock skew between nodes) is accepted; it is expired once
``signed_at + max_age < now``.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Final

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

from .errors import ExpiredToken, InvalidToken

__all__ = ["DEFAULT_MAX_AGE", "sign", "verify"]

DEFAULT_MAX_AGE: Final = 86_400
"""Seconds a token stays valid unless ``max_age`` says otherwise (Phoenix: one day)."""


class _Signer(TimestampSigner):
    """itsdangerous's timestamp signer with an injectable clock (its documented hook
    is overriding ``get_timestamp``)."""

    def __init__(self, *args: Any, now: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._now = now

    def get_timestamp(self) -> int:
        return int(time.time() if self._now is None else self._now)


def _serializer(secret: str | bytes, salt: str | bytes, now: float | None) -> URLSafeTimedSerializer:
    if not secret:
        raise ValueError("the token secret must not be empty")
    return URLSafeTimedSerializer(
        secret,
        salt=salt,
        serializer=json,
        signer=_Signer,
        signer_kwargs={"digest_method": hashlib.sha256, "key_derivation": "hmac", "now": now},
    )


def sign(secret: str | bytes, salt: str | bytes, data: Any, *, now: float | None = None) -> str:
    """Sign ``data`` (any JSON-serializable value) and return the token.

    ``now`` is the signing time in Unix seconds (default: the current time; Phoenix's
    ``signed_at``). Raises `TypeError` if ``data`` is not JSON-serializable and
    `ValueError` if ``secret`` is empty.
    """
    return _serializer(secret, salt, now).dumps(data)


def verify(
    secret: str | bytes,
    salt: str | bytes,
    token: str | bytes | None,
    *,
    max_age: float | None = DEFAULT_MAX_AGE,
    now: float | None = None,
) -> Any:
    """Check ``token`` and return the data it was signed with.

    ``max_age`` is in seconds (None: never expires); ``now`` is the current time in
    Unix seconds (default: the clock). Raises `InvalidToken` if the token is missing
    (None or empty) or does not verify under this ``secret`` and ``salt``, and
    `ExpiredToken` (a subclass of `InvalidToken`) if it was signed more than
    ``max_age`` seconds before ``now``.
    """
    if not token:
        raise InvalidToken("missing token")
    try:
        data, signed_at = _serializer(secret, salt, None).loads(token, max_age=None, return_timestamp=True)
    except (BadData, UnicodeError) as exc:
        # UnicodeError: a str token with lone surrogates cannot even be turned into bytes.
        raise InvalidToken(f"invalid token: {type(exc).__name__}") from None
    if max_age is not None:
        current = time.time() if now is None else now
        age = current - signed_at.timestamp()
        if age > max_age:
            raise ExpiredToken(f"token expired: signed {age:.0f} s ago, max_age is {max_age} s")
    return data
