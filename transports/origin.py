"""The ``Origin`` check of WebSocket and long-poll requests (docs/protocol.md §1.5).

A port of ``Phoenix.Socket.Transport.check_origin/5``. The policy is one of:

- ``True`` (Phoenix's default): the Origin host must equal the endpoint's configured
  host; scheme and port are not compared.
- ``False``: no check.
- a list of patterns such as ``"https://example.com"``, ``"//example.com:8080"``,
  ``"//*.example.com"``: the origin must match one. A missing scheme or port is a
  wildcard (``//``), a scheme without a port implies its default port
  (``https://x`` means port 443, as Elixir's ``URI.parse`` fills it in), and a host
  ``*.x`` matches ``x`` and every subdomain of it.
- ``"conn"``: the Origin's scheme, host and port must equal the request's own (its
  ``Host`` header and scheme).
- a callable ``(origin: str) -> bool``, given the Origin header as sent (Phoenix's
  MFA, which receives the parsed URI).

A request without an Origin header is always allowed (non-browser clients send
none). An Origin without a host (``null`` from a sandboxed page, garbage) is refused
by every policy but ``False`` and a callable. Hosts compare case-insensitively.
A refused request gets HTTP 403 (WebSocket) or ``{"status": 403}`` (long-poll).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

__all__ = ["OriginPolicy", "check_origin", "validate_origin_policy"]

OriginPolicy = bool | Literal["conn"] | Sequence[str] | Callable[[str], bool]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
# The scheme of the HTTP request that carries a WebSocket upgrade.
_REQUEST_SCHEMES = {"ws": "http", "wss": "https"}


class _Uri(NamedTuple):
    scheme: str | None
    host: str | None
    port: int | None


def _parse(uri: str) -> _Uri:
    """Scheme, host and port as Elixir's ``URI.parse`` gives them (None when absent;
    the port defaults by scheme). Anything unparseable has no host."""
    try:
        parts = urlsplit(uri)
        port = parts.port
        host = parts.hostname
    except ValueError:
        return _Uri(None, None, None)
    scheme = parts.scheme or None
    if port is None and scheme is not None:
        port = _DEFAULT_PORTS.get(scheme)
    return _Uri(scheme, host or None, port)


def _pattern(pattern: str) -> _Uri:
    uri = _parse(pattern) if isinstance(pattern, str) else _Uri(None, None, None)
    if uri.host is None:
        raise ValueError(
            f"invalid check_origin pattern {pattern!r}: expected an origin with a host, "
            'for example "https://example.com", "//another.com:888" or "//*.other.com"'
        )
    return uri


def validate_origin_policy(policy: OriginPolicy) -> None:
    """Check a ``check_origin`` setting up front; raises `ValueError` saying what is
    wrong (Phoenix raises ``ArgumentError`` when the endpoint starts)."""
    if isinstance(policy, bool) or policy == "conn" or callable(policy):
        return
    if isinstance(policy, str) or not isinstance(policy, Sequence):
        raise ValueError(f"check_origin expects True, False, a list of origins, 'conn' or a callable, got {policy!r}")
    for pattern in policy:
        _pattern(pattern)


def check_origin(
    origin: str | None,
    policy: OriginPolicy,
    endpoint_host: str,
    request_host: str | None,
    request_scheme: str,
) -> bool:
    """Whether a request with this ``Origin`` header may connect.

    ``endpoint_host`` is the endpoint's configured host (policy ``True``);
    ``request_host`` the request's ``Host`` header and ``request_scheme`` its scheme
    (``"http"``/``"https"``; policy ``"conn"``). Raises `ValueError` for a malformed
    policy (see `validate_origin_policy`); a malformed Origin is simply refused.
    """
    if origin is None or policy is False:
        return True
    if policy is True:
        host = _parse(origin).host
        return host is not None and host == endpoint_host.lower()
    if policy == "conn":
        return _same_as_request(_parse(origin), request_host, request_scheme)
    if callable(policy):
        return bool(policy(origin))
    validate_origin_policy(policy)
    uri = _parse(origin)
    if uri.host is None:
        return False
    return any(_matches(uri, _pattern(pattern)) for pattern in policy)


def _same_as_request(uri: _Uri, request_host: str | None, request_scheme: str) -> bool:
    if uri.host is None or not request_host:
        return False
    scheme = request_scheme.lower()
    scheme = _REQUEST_SCHEMES.get(scheme, scheme)
    request = _parse(f"{scheme}://{request_host}")
    return request.host is not None and uri == request


def _matches(uri: _Uri, allowed: _Uri) -> bool:
    if allowed.scheme is not None and uri.scheme != allowed.scheme:
        return False
    if allowed.port is not None and uri.port != allowed.port:
        return False
    host, allowed_host = uri.host or "", allowed.host or ""
    if allowed_host.startswith("*."):
        base = allowed_host[2:]
        return host == base or host.endswith("." + base)
    return host == allowed_host
