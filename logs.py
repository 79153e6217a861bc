"""How ``alight run`` and ``alight node`` log: a level, text or JSON lines, and no floods.

`configure` installs one handler on the root logger (stderr), as ``logging.basicConfig``
does, with:

- the level (``--log-level``, ``ALIGHT_LOG_LEVEL``; default ``info``);
- the format: ``text`` (``2026-12-07 10:00:00,123 INFO alight.runner: ...``) or ``json``
  (one object per line: ``ts``, ``level``, ``logger``, ``message``, and ``exc`` with the
  traceback when there is one), for log collectors (``--log-format``,
  ``ALIGHT_LOG_FORMAT``);
- `RepeatFilter`: a warning logged again and again (a client reconnecting in a loop with
  a bad ``vsn`` made 3,200 warnings in 40 s) passes ``burst`` times per ``window``, then
  is held back; the next one that passes after the window says how many were held back.
  Warnings are alike when they come from the same logger at the same level and read the
  same once their numbers are masked (``socket <0.27.0>: refusing join of 'room:flood119'``
  and ``... 'room:flood120'`` are alike; ``... 'room:limit100'`` is not), as a person
  reading the log would group them. Lines below WARNING pass: their volume is what the
  level says (``--log-level warning`` quiets them).

A library never configures logging by itself: applications that embed alight keep their
own configuration and may add `RepeatFilter` to their handlers.

`RedactTokens` is for the access logs of other servers: uvicorn logs every request line,
and a long-poll request's carries its session token (``token=...``), which lets whoever
reads the log drive that session. Add it to uvicorn's access logger::

    logging.getLogger("uvicorn.access").addFilter(RedactTokens())

(or run uvicorn with ``--no-access-log``).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable
from typing import IO, Literal

import orjson

__all__ = ["LEVELS", "TEXT_FORMAT", "JsonFormatter", "RedactTokens", "RepeatFilter", "configure"]

LEVELS = ("debug", "info", "warning", "error")
_DIGITS = re.compile(r"\d+")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RepeatFilter(logging.Filter):
    """Let ``burst`` alike records through per ``window`` seconds (module docstring).
    Memory: one entry per distinct (logger, level, format string), at most ``max_keys``
    (the oldest go first)."""

    def __init__(
        self, burst: int = 20, window: float = 60.0, max_keys: int = 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        # key -> [window start, passed in this window, held back in this window]
        self._seen: dict[tuple[str, int, str], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, _DIGITS.sub("N", record.getMessage()))
        now = self.clock()
        entry = self._seen.get(key)
        if entry is None:
            if len(self._seen) >= self.max_keys:
                del self._seen[next(iter(self._seen))]
            self._seen[key] = [now, 1, 0]
            return True
        if now - entry[0] >= self.window:
            held = int(entry[2])
            entry[0], entry[1], entry[2] = now, 1, 0
            if held:
                record.msg = f"{record.msg} [{held} more like this held back in the last {self.window:g} s]"
            return True
        if entry[1] < self.burst:
            entry[1] += 1
            return True
        entry[2] += 1
        return False


class RedactTokens(logging.Filter):
    """Replaces the value of every ``token=`` in a record's message and arguments with
    ``[redacted]`` (module docstring); lets every record through."""

    _TOKEN = re.compile(r"((?:^|[?&])token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self._TOKEN.sub(r"\1[redacted]", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._TOKEN.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, and ``exc`` (the formatted traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure(
    level: str = "info", fmt: Literal["text", "json"] = "text", stream: IO[str] | None = None
) -> logging.Handler:
    """Log to ``stream`` (stderr) at ``level`` in ``fmt``, floods held back; returns the
    handler (replacing any that `configure` installed before). ValueError for an
    unknown level or format."""
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be text or json, not {fmt!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_alight", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler._alight = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RepeatFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
