"""Phoenix.Token through the endpoint: sign with its secret, verify with the same salt."""

from __future__ import annotations

import pytest

from alight.channels import Endpoint
from alight.channels.errors import InvalidToken


def test_a_signed_token_verifies_with_the_same_salt() -> None:
    app = Endpoint(secret_key_base="s" * 64)
    token = app.sign_token("user socket", {"user_id": 7})
    assert app.verify_token("user socket", token) == {"user_id": 7}


def test_another_salt_or_secret_refuses_the_token() -> None:
    app = Endpoint(secret_key_base="s" * 64)
    token = app.sign_token("user socket", 7)
    with pytest.raises(InvalidToken):
        app.verify_token("other", token)
    with pytest.raises(InvalidToken):
        Endpoint(secret_key_base="t" * 64).verify_token("user socket", token)
