"""Plain HTTP requests and responses, as the endpoint sees them.

The native server (`alight.transports.server`) and the ASGI adapter both turn a
request into an `HttpRequest` and write back the `HttpResponse` the endpoint returns,
so the endpoint's routes (long-poll, the app's own routes, 404) are written once.
Both classes are plain values: no I/O, no streaming. Request bodies are read whole,
up to the server's ``max_body_size``; responses carry their whole body.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

Headers = tuple[tuple[str, str], ...]
"""Header fields in order: ``(lower-case name, value)``; a name may repeat."""


def last_header(headers: Headers, name: str) -> str | None:
    """The last value of header ``name`` (case-insensitive) in ``headers``, or None
    (a repeated header's last value wins, as Plug reads it)."""
    name = name.lower()
    found = None
    for key, value in headers:
        if key == name:
            found = value
    return found


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request.

    - ``method``: upper-case (``"GET"``).
    - ``path``: the request target's path, percent-decoded (as ASGI's ``path``).
    - ``query_string``: the raw query string, without ``?`` and not decoded
      (``"user_id=u1&vsn=2.0.0"``); parse it with `alight.transports.base`'s rules.
    - ``headers``: every header, names lower-cased, values decoded as Latin-1.
    - ``body``: the whole body (chunked bodies are reassembled).
    - ``peer``: the client's ``(host, port)``, if known.
    """

    method: str
    path: str
    query_string: str = ""
    headers: Headers = ()
    body: bytes = b""
    peer: tuple[str, int] | None = None

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` (case-insensitive), or None."""
        return last_header(self.headers, name)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """The endpoint's answer: ``status``, ``headers`` (any case) and ``body``.

    The server adds ``content-length`` (any given one is replaced) and, when it will
    close the connection, ``connection: close``.
    """

    status: int = 200
    headers: Headers = ()
    body: bytes = b""

    @classmethod
    def text(cls, body: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> HttpResponse:
        """A text response (``text/plain`` unless ``content_type`` says otherwise)."""
        return cls(status, (("content-type", content_type),), body.encode())

    @classmethod
    def empty(cls, status: int) -> HttpResponse:
        """A response with no body, such as Phoenix's refused WebSocket (403)."""
        return cls(status)


def reason_phrase(status: int) -> str:
    """The standard reason phrase of ``status`` (``"Not Found"``), or ``""``."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
