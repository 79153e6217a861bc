"""`alight.logs`: floods held back with a count, JSON lines, refusals of bad settings."""

from __future__ import annotations

import io
import json
import logging

import pytest

from alight.logs import JsonFormatter, RepeatFilter, configure


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(msg: str, *args: object, name: str = "alight.test", level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_a_flood_is_held_back_and_counted() -> None:
    clock = Clock()
    limit = RepeatFilter(burst=3, window=60.0, clock=clock)
    passed = [limit.filter(_record("bad vsn %r from %s", "9.9", f"10.0.0.{i}")) for i in range(3200)]
    assert passed.count(True) == 3  # alike: the same once the numbers are masked
    assert limit.filter(_record("another message")) is True  # others are not held back
    assert limit.filter(_record("bad vsn %r from %s", "x.y", "10.0.0.1")) is True  # reads otherwise
    assert all(limit.filter(_record("joined %d", i, level=logging.INFO)) for i in range(100))  # below WARNING
    clock.now = 61.0
    record = _record("bad vsn %r from %s", "9.9", "10.0.0.1")
    assert limit.filter(record) is True
    assert record.getMessage() == "bad vsn '9.9' from 10.0.0.1 [3197 more like this held back in the last 60 s]"
    assert "x.y" not in record.getMessage()
    assert limit.filter(_record("bad vsn %r from %s", "9.9", "x")) is True  # a new window's burst


def test_levels_and_loggers_are_told_apart_and_keys_are_bounded() -> None:
    limit = RepeatFilter(burst=1, max_keys=2, clock=Clock())
    assert limit.filter(_record("m", name="a"))
    assert limit.filter(_record("m", name="b"))
    assert limit.filter(_record("m", name="a", level=logging.ERROR))  # a third key: the oldest goes
    assert limit.filter(_record("m", name="a"))  # forgotten, so it passes again
    assert len(limit._seen) == 2


def test_json_lines() -> None:
    formatter = JsonFormatter()
    line = json.loads(formatter.format(_record("joined %s in %dµs", "room:1", 30)))
    assert line["level"] == "warning"
    assert line["logger"] == "alight.test"
    assert line["message"] == "joined room:1 in 30µs"
    assert line["ts"].endswith("Z")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "crash", (), sys.exc_info())
    assert "ValueError: boom" in json.loads(formatter.format(record))["exc"]


def test_configure_replaces_its_handler_and_refuses_nonsense() -> None:
    root = logging.getLogger()
    level = root.level
    out = io.StringIO()
    try:
        first = configure("warning", "json", out)
        second = configure("warning", "json", out)
        assert first not in root.handlers
        assert second in root.handlers
        logging.getLogger("alight.x").info("hidden")
        logging.getLogger("alight.x").warning("shown %d", 1)
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        assert [line["message"] for line in lines] == ["shown 1"]
    finally:
        root.removeHandler(second)
        root.setLevel(level)
    with pytest.raises(ValueError, match="log level"):
        configure("loud")
    with pytest.raises(ValueError, match="log format"):
        configure("info", "xml")  # type: ignore[arg-type]


def test_tokens_are_redacted_from_access_log_lines() -> None:
    from alight.logs import RedactTokens

    # uvicorn's access logger: '%s - "%s %s HTTP/%s" %d' with the path and query as one argument.
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/socket/longpoll?vsn=2.0.0&token=SFMyNTY.g2gDdA.abc&user_id=u", "1.1", 200),
        None,
    )
    assert RedactTokens().filter(record)
    line = record.getMessage()
    assert "SFMyNTY" not in line
    assert "/socket/longpoll?vsn=2.0.0&token=[redacted]&user_id=u" in line
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "GET /?token=abc", (), None)
    RedactTokens().filter(plain)
    assert plain.getMessage() == "GET /?token=[redacted]"
