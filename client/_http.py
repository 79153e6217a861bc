"""A minimal HTTP/1.1 client over asyncio streams, for the long-poll transport.

Long-poll needs two things only: a GET and a POST to one origin, each with a timeout,
on a connection kept alive between requests. The stdlib has no asyncio HTTP client;
rather than a new dependency (httpx or aiohttp and their own dependency trees) this
uses ``httptools`` — already a dependency of alight, the server's parser — to parse
responses (so chunked bodies and keep-alive are handled by a real parser), and
``asyncio.open_connection`` for plain TCP or TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit

import httptools

__all__ = ["HttpConnection", "HttpError"]


class HttpError(OSError):
    """The connection failed, closed mid-response, or the response did not parse."""


class _Response:
    def __init__(self) -> None:
        self.body = bytearray()
        self.complete = False

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


class HttpConnection:
    """One keep-alive connection to the origin of ``url``, one request at a time; it
    reconnects for the next request when the server closed it."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or parts.hostname is None:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self._netloc = parts.netloc
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        """Send ``method target`` and return ``(status, body)``; `HttpError` (an
        `OSError`) if the connection fails. ``target`` is the path and query."""
        try:
            return await self._request(method, target, headers, body)
        except (OSError, httptools.HttpParserError, asyncio.IncompleteReadError) as exc:
            await self.close()
            raise HttpError(f"{method} {target}: {exc!r}") from exc
        except BaseException:
            await self.close()  # cancelled or timed out mid-request: the stream is unusable
            raise

    async def _request(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if self._streams is None:
            context = ssl.create_default_context() if self._tls else None
            self._streams = await asyncio.open_connection(self._host, self._port, ssl=context)
        reader, writer = self._streams
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._netloc}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        response = _Response()
        parser = httptools.HttpResponseParser(response)
        while not response.complete:
            data = await reader.read(65536)
            if not data:
                raise HttpError("connection closed before the response was complete")
            parser.feed_data(data)
        if not parser.should_keep_alive():
            await self.close()
        return parser.get_status_code(), bytes(response.body)

    async def close(self) -> None:
        streams, self._streams = self._streams, None
        if streams is not None:
            streams[1].close()
            with contextlib.suppress(OSError):
                await streams[1].wait_closed()
