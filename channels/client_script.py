"""The browser client that every endpoint serves: ``/alight.js`` and ``/alight.mjs``.

``static/alight.js`` is the source (a plain script that defines ``alight``);
``static/alight.mjs`` is its ES module build, made from it by `module_build` and shipped
beside it (a unit test checks that the two agree). After changing ``alight.js``, write
the module again::

    python -m alight.channels.client_script
"""

from __future__ import annotations

import functools
import hashlib
import sys
from pathlib import Path

from ..transports.http import HttpRequest, HttpResponse

CLIENT_SCRIPT_PATH = "/alight.js"
"""Where every endpoint serves the browser client as a plain script (defines ``alight``),
unless the app routes that path itself."""
CLIENT_MODULE_PATH = "/alight.mjs"
"""Where every endpoint serves the same client as an ES module (``import {Socket} from
"/alight.mjs"``), unless the app routes that path itself."""

STATIC = Path(__file__).parent / "static"
_FILES = {CLIENT_SCRIPT_PATH: STATIC / "alight.js", CLIENT_MODULE_PATH: STATIC / "alight.mjs"}
_FACTORY_BEGIN = "// alight:factory begin"
_FACTORY_END = "// alight:factory end"
_MODULE_EXPORTS = ("Socket", "Channel", "Push", "Presence", "LongPoll", "Serializer", "vsn")


def module_build(script: str) -> str:
    """The ES module build of ``alight.js``: the script's factory function (between its
    ``alight:factory`` markers) called with ``globalThis``, and its names exported; no
    global is defined. ``ValueError`` if the markers are missing."""
    begin = script.index("\n", script.index(_FACTORY_BEGIN)) + 1
    end = script.index(_FACTORY_END, begin)
    factory = script[begin:end].rstrip()
    exports = "".join(f"export const {name} = alight.{name}\n" for name in _MODULE_EXPORTS)
    return (
        "// alight.mjs: the ES module build of alight.js (the same source; see /alight.js).\n"
        f"const alight = ({factory})(globalThis)\n{exports}export default alight\n"
    )


@functools.cache
def _served() -> dict[str, tuple[bytes, str]]:
    """The client's builds by path (read once): body and ETag."""
    out = {}
    for path, file in _FILES.items():
        body = file.read_bytes()
        out[path] = (body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return out


def is_client_script(request: HttpRequest) -> bool:
    """Whether ``request`` asks for the browser client (``GET``/``HEAD`` of its paths)."""
    return request.path in _FILES and request.method in ("GET", "HEAD")


def client_script_response(request: HttpRequest) -> HttpResponse:
    """``GET /alight.js`` or ``GET /alight.mjs``: the browser client, with an ETag
    (``304`` when it matches ``If-None-Match``), a short public cache lifetime (a new
    alight version is picked up within the hour), and CORS open to every origin, as a
    page on another origin needs for a module script. ``KeyError`` for another path."""
    body, etag = _served()[request.path]
    headers = (("etag", etag), ("cache-control", "public, max-age=3600"), ("access-control-allow-origin", "*"))
    if request.header("if-none-match") == etag:
        return HttpResponse(304, headers)
    # HEAD: the server writes the headers (content-length included) and no body.
    return HttpResponse(200, (("content-type", "application/javascript; charset=utf-8"), *headers), body)


def main() -> int:
    """Write ``static/alight.mjs`` from ``static/alight.js``."""
    module = module_build(_FILES[CLIENT_SCRIPT_PATH].read_text(encoding="utf-8"))
    _FILES[CLIENT_MODULE_PATH].write_text(module, encoding="utf-8")
    print(f"wrote {_FILES[CLIENT_MODULE_PATH]} ({len(module)} characters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "CLIENT_MODULE_PATH",
    "CLIENT_SCRIPT_PATH",
    "client_script_response",
    "is_client_script",
    "module_build",
]
