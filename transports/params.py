"""Query-string parameters, parsed the way Plug parses them (docs/protocol.md §1.2).

A port of ``Plug.Conn.Query.decode/1`` (Plug >= 1.16, the ``decode_each`` decoder
that Phoenix 1.8 runs), so ``connect`` sees the same ``params`` a Phoenix socket
would:

- ``a=1&a=2`` -> ``{"a": "2"}``: the last value wins (the long-poll client relies on
  it: its session ``token`` comes after the user's own params).
- ``a[b]=1`` -> ``{"a": {"b": "1"}}``; ``a[0]=x`` -> ``{"a": {"0": "x"}}`` (a dict, not
  a list); ``a[]=x&a[]=y`` -> ``{"a": ["x", "y"]}``. Whether a container is a list
  or a dict is decided by the last parameter written into it. A key that does not
  end in ``]``, or whose first ``[`` is at position 0, is a plain key (``[a]=1`` ->
  ``{"[a]": "1"}``).
- ``a`` (no ``=``) -> ``{"a": ""}``; ``=x`` -> ``{"": "x"}``; empty segments (``&&``,
  a trailing ``&``) are skipped.
- keys and values are ``application/x-www-form-urlencoded``: ``+`` is a space,
  ``%XX`` a byte, and a ``%`` not followed by two hex digits stays a literal ``%``
  (Elixir's ``URI.decode_www_form``). All values are `str`.

Bounds (Plug has none of its own; its HTTP server bounds the request line): at most
`MAX_PARAMS` non-empty parameters and `MAX_DEPTH` bracket levels per key. Beyond
them, or when a decoded key or value is not valid UTF-8 (Plug answers 400),
`InvalidQuery` is raised; it is the only exception `parse_params` raises.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import unquote_to_bytes

from .errors import InvalidQuery

__all__ = ["MAX_DEPTH", "MAX_PARAMS", "InvalidQuery", "parse_params"]

MAX_PARAMS: Final = 1_000
"""Most non-empty ``&``-separated parameters one query string may carry."""

MAX_DEPTH: Final = 32
"""Most ``[...]`` levels one key may nest."""


class _Pointer:
    """A value that stands for the container collected under ``level``."""

    __slots__ = ("level",)

    def __init__(self, level: str) -> None:
        self.level = level


_ROOT: Final = ""
# Level names are key prefixes that end in "]" (like "a[b]") or plain key names; the
# root gets its own slot so that no key can collide with it.
_Levels = dict[tuple[bool, str], list[tuple[str | None, Any]]]


def parse_params(query: str | bytes, *, max_params: int = MAX_PARAMS, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """Parse a raw query string (without the ``?``) into nested dicts, lists and strings.

    Raises `InvalidQuery` if there are more than ``max_params`` parameters, a key
    nests deeper than ``max_depth``, or a decoded key or value is not valid UTF-8.
    """
    try:
        raw = query.encode() if isinstance(query, str) else bytes(query)
    except UnicodeEncodeError:
        raise InvalidQuery("query string is not valid text (lone surrogates)") from None
    if not raw:
        return {}
    levels: _Levels = {(True, _ROOT): []}
    count = 0
    for part in raw.split(b"&"):
        if not part:
            continue
        count += 1
        if count > max_params:
            raise InvalidQuery(f"more than {max_params} query parameters")
        raw_key, _, raw_value = part.partition(b"=")
        key = _decode(raw_key)
        _insert(levels, _split_key(key, max_depth), _decode(raw_value))
    return _finalize_map(levels[(True, _ROOT)], levels)


def _decode(raw: bytes) -> str:
    if b"%" in raw or b"+" in raw:
        # unquote_to_bytes leaves a "%" without two hex digits as is, like Elixir.
        raw = unquote_to_bytes(raw.replace(b"+", b" "))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidQuery(f"invalid UTF-8 in query parameter {raw[:60]!r}") from None


def _split_key(key: str, max_depth: int) -> list[tuple[tuple[bool, str], str | None]]:
    """``users[a][b]`` -> ``[("users[a]", "b"), ("users", "a"), (root, "users")]``:
    (container level, key in it) pairs, innermost first; an empty ``[]`` key is None."""
    pos = key.find("[")
    if pos <= 0 or not key.endswith("]"):
        return [((True, _ROOT), key)]
    keys: list[tuple[tuple[bool, str], str | None]] = [((True, _ROOT), key[:pos])]
    level = key[:pos]
    last = len(key) - 1
    start = index = pos + 1
    while True:
        if key[index] == "]":
            if index == last:
                keys.append(((False, level), key[start:index] or None))
                break
            if key[index + 1] == "[":
                keys.append(((False, level), key[start:index] or None))
                if len(keys) > max_depth:
                    raise InvalidQuery(f"query parameter nested deeper than {max_depth} levels")
                level = key[: index + 1]
                index += 2
                start = index
                continue
        index += 1
    if len(keys) - 1 > max_depth:
        raise InvalidQuery(f"query parameter nested deeper than {max_depth} levels")
    keys.reverse()
    return keys


def _insert(levels: _Levels, keys: list[tuple[tuple[bool, str], str | None]], value: Any) -> None:
    """Plug's ``insert_keys``: add the value to its innermost container; a container
    seen for the first time is linked into its parent by a pointer."""
    for level, key in keys:
        entries = levels.get(level)
        if entries is not None:
            entries.append((key, value))
            return
        levels[level] = [(key, value)]
        value = _Pointer(level[1])


def _resolve(value: Any, levels: _Levels) -> Any:
    if not isinstance(value, _Pointer):
        return value
    entries = levels[(False, value.level)]
    if entries[-1][0] is None:
        return [_resolve(item, levels) for key, item in entries if key is None]
    return _finalize_map(entries, levels)


def _finalize_map(entries: list[tuple[str | None, Any]], levels: _Levels) -> dict[str, Any]:
    latest: dict[str, Any] = {}
    for key, value in entries:
        if key is not None:
            latest[key] = value
    return {key: _resolve(value, levels) for key, value in latest.items()}
