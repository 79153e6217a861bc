"""The WebSocket opening handshake (RFC 6455 §4.2), as pure functions.

Shared by the native server (which validates the request and writes the 101) and
the endpoint (which reads the phoenix 1.8 client's auth token from the offered
subprotocols, docs/protocol.md §1.7, whatever server runs it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from .http import HttpRequest

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
AUTH_TOKEN_PREFIX = "base64url.bearer.phx."


def header_tokens(request: HttpRequest, name: str) -> list[str]:
    """The comma-separated tokens of every ``name`` header, in order."""
    return [t.strip() for k, v in request.headers if k == name for t in v.split(",") if t.strip()]


def websocket_key(request: HttpRequest) -> str | None:
    """The ``Sec-WebSocket-Key`` of a valid RFC 6455 handshake request, or None."""
    if request.method != "GET":
        return None
    if "websocket" not in (t.lower() for t in header_tokens(request, "upgrade")):
        return None
    if "upgrade" not in (t.lower() for t in header_tokens(request, "connection")):
        return None
    if request.header("sec-websocket-version") != "13":
        return None
    key = request.header("sec-websocket-key")
    if key is None:
        return None
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except binascii.Error:
        return None
    return key


def auth_token(subprotocols: list[str]) -> str | None:
    """The token the 1.8 client hides in ``base64url.bearer.phx.<btoa(token)>``
    (padding stripped, docs/protocol.md §1.7), or None."""
    for offer in subprotocols:
        if offer.startswith(AUTH_TOKEN_PREFIX):
            text = offer[len(AUTH_TOKEN_PREFIX) :].replace("-", "+").replace("_", "/")
            try:
                return base64.b64decode(text + "=" * (-len(text) % 4)).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None


def handshake_response(key: str, subprotocol: str | None) -> bytes:
    """The ``101 Switching Protocols`` answer to a handshake with ``key``."""
    accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "upgrade: websocket",
        "connection: Upgrade",
        f"sec-websocket-accept: {accept}",
    ]
    if subprotocol is not None:
        lines.append(f"sec-websocket-protocol: {subprotocol}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")
