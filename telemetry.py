"""Telemetry: named events that users hook, as Erlang's ``:telemetry`` library.

Every `Node` owns one `Telemetry` registry (``node.telemetry``; no global state). A
handler is attached under a unique id to one or more events; `execute` calls every
handler of an event, in the caller, synchronously::

    def on_join(event, measurements, metadata, config):
        log.info("joined %s in %.3f ms", metadata["topic"], measurements["duration"] * 1000)

    node.telemetry.attach("my-app.joins", CHANNEL_JOINED, on_join)

An event is a tuple of strings, such as ``("alight", "channel", "joined")``;
``measurements`` are numbers, ``metadata`` is context (objects, not copies). Durations
are in seconds (``time.perf_counter``). A handler that raises is detached and logged,
and `HANDLER_FAILURE` is executed, as ``:telemetry`` does: a broken handler never
breaks the code that emitted the event, and is not called again.

The events alight emits (Phoenix's names in parentheses):

``("alight", "socket", "connected")`` (``[:phoenix, :socket_connected]``)
    After ``Socket.connect`` (and ``id``) ran for a new connection.
    measurements: ``duration``. metadata: ``endpoint`` (the `Endpoint`),
    ``user_socket`` (the `Socket` class), ``transport`` (``"websocket"`` or
    ``"longpoll"``), ``vsn`` (``"1.0.0"`` / ``"2.0.0"``), ``params``, ``connect_info``,
    ``result`` (``"ok"``, or ``"error"`` when refused or crashed).
``("alight", "channel", "joined")`` (``[:phoenix, :channel_joined]``)
    After a channel's ``join`` returned. measurements: ``duration``. metadata:
    ``endpoint``, ``channel`` (the class), ``topic``, ``params`` (the join payload),
    ``transport``, ``result`` (``"ok"`` / ``"error"``).
``("alight", "channel", "handled_in")`` (``[:phoenix, :channel_handled_in]``)
    After a channel's ``handle_in`` returned. measurements: ``duration``. metadata:
    ``endpoint``, ``channel``, ``topic``, ``event``, ``params``.
``("alight", "pubsub", "broadcast")``
    Once per dispatch of a broadcast on a node (not per delivery): on the node that
    broadcast and on every node a cluster broadcast reaches. measurements:
    ``local_deliveries`` (fastlane writes plus messages sent on this node).
    metadata: ``pubsub`` (the `PubSub`), ``topic``, ``event`` (None for a message
    that is not a `Broadcast`).
``("alight", "cluster", "node_up")`` / ``("alight", "cluster", "node_down")``
    A peer came up / was declared down (Erlang's ``nodeup`` / ``nodedown``).
    measurements: ``nodes_up`` (peers up after the change). metadata: ``node`` (this
    node's name), ``peer`` (the other node's name), ``reason`` (node_up:
    ``"connected"``; node_down: ``"connection_lost"``, ``"heartbeat_timeout"`` or
    ``"restarted"``).

Cost: `execute` with no handler is one dict lookup. Where building the measurements
or metadata costs more than that, emitters first ask `has_handlers`.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .errors import AlightError

log = logging.getLogger("alight.telemetry")

Event = tuple[str, ...]
"""An event name: a tuple of strings, e.g. ``("alight", "channel", "joined")``."""

Handler = Callable[[Event, Mapping[str, Any], Mapping[str, Any], Any], None]
"""``handler(event, measurements, metadata, config)``; its return value is ignored."""

SOCKET_CONNECTED: Event = ("alight", "socket", "connected")
CHANNEL_JOINED: Event = ("alight", "channel", "joined")
CHANNEL_HANDLED_IN: Event = ("alight", "channel", "handled_in")
PUBSUB_BROADCAST: Event = ("alight", "pubsub", "broadcast")
NODE_UP: Event = ("alight", "cluster", "node_up")
NODE_DOWN: Event = ("alight", "cluster", "node_down")
HANDLER_FAILURE: Event = ("telemetry", "handler", "failure")
"""Executed when a handler raised and was detached (``:telemetry``'s own event).
measurements: ``monotonic_time``; metadata: ``handler_id``, ``handler_config``,
``event_name``, ``kind`` (``"error"``), ``reason`` (the exception), ``stacktrace``."""

EVENTS: tuple[Event, ...] = (SOCKET_CONNECTED, CHANNEL_JOINED, CHANNEL_HANDLED_IN, PUBSUB_BROADCAST, NODE_UP, NODE_DOWN)
"""Every event alight itself emits."""


class TelemetryError(AlightError):
    """The root of telemetry's errors."""


class AlreadyAttached(TelemetryError):  # noqa: N818 - :telemetry's {error, already_exists}
    """A handler is already attached under this id: `detach` it first, or pick another id."""


class InvalidEvent(TelemetryError, ValueError):  # noqa: N818 - names what is wrong
    """An event name that is not a non-empty tuple of strings."""


@dataclass(frozen=True, slots=True)
class HandlerInfo:
    """One attached handler, as `Telemetry.list_handlers` reports it."""

    id: str
    events: tuple[Event, ...]
    function: Handler
    config: Any = field(default=None)


def _check_event(event: Any) -> Event:
    if not (isinstance(event, tuple) and event and all(isinstance(part, str) for part in event)):
        raise InvalidEvent(
            f"an event is a non-empty tuple of strings, such as ('alight', 'channel', 'joined'), not {event!r}"
        )
    return event


class Telemetry:
    """The handlers of one node's events; see the module docstring.

    Not thread-safe: use it from the node's event loop, like everything of a node.
    """

    def __init__(self) -> None:
        # event -> its handlers, in attach order; a tuple, replaced on every change,
        # so that `execute` iterates a snapshot (a handler may detach itself).
        self._table: dict[Event, tuple[HandlerInfo, ...]] = {}
        self._by_id: dict[str, HandlerInfo] = {}

    def __repr__(self) -> str:
        return f"<Telemetry handlers={len(self._by_id)} events={len(self._table)}>"

    # -- attaching ------------------------------------------------------------------

    def attach(self, handler_id: str, event: Event, handler: Handler, config: Any = None) -> None:
        """Call ``handler(event, measurements, metadata, config)`` on every `execute` of
        ``event``. Raises `AlreadyAttached` if ``handler_id`` is taken, `InvalidEvent`
        for a malformed event name. Keep handlers quick: they run in the emitter."""
        self.attach_many(handler_id, [event], handler, config)

    def attach_many(self, handler_id: str, events: Iterable[Event], handler: Handler, config: Any = None) -> None:
        """Like `attach`, for several events under one id (detached together)."""
        if handler_id in self._by_id:
            raise AlreadyAttached(f"a telemetry handler is already attached as {handler_id!r}")
        names = tuple(dict.fromkeys(_check_event(event) for event in events))
        if not names:
            raise InvalidEvent(f"attach_many({handler_id!r}) needs at least one event")
        if not callable(handler):
            raise TypeError(f"a telemetry handler must be callable, not {handler!r}")
        info = HandlerInfo(handler_id, names, handler, config)
        self._by_id[handler_id] = info
        for name in names:
            self._table[name] = (*self._table.get(name, ()), info)

    def detach(self, handler_id: str) -> bool:
        """Remove the handler attached as ``handler_id``; False if there was none."""
        info = self._by_id.pop(handler_id, None)
        if info is None:
            return False
        for name in info.events:
            rest = tuple(h for h in self._table.get(name, ()) if h is not info)
            if rest:
                self._table[name] = rest
            else:
                self._table.pop(name, None)
        return True

    def list_handlers(self, prefix: Event = ()) -> list[HandlerInfo]:
        """The handlers attached to an event that starts with ``prefix`` (every handler
        for ``()``), in attach order, each once."""
        n = len(prefix)
        return [info for info in self._by_id.values() if any(event[:n] == prefix for event in info.events)]

    def has_handlers(self, event: Event) -> bool:
        """True if `execute` of ``event`` would call anything: emitters ask first when
        building the measurements or metadata costs something."""
        return event in self._table

    # -- emitting -------------------------------------------------------------------

    def execute(self, event: Event, measurements: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> None:
        """Call every handler of ``event``, in attach order. A handler that raises is
        detached and logged, and `HANDLER_FAILURE` is executed; the caller never sees
        the error."""
        handlers = self._table.get(event)
        if handlers is None:
            return
        meta: Mapping[str, Any] = {} if metadata is None else metadata
        for info in handlers:
            try:
                info.function(event, measurements, meta, info.config)
            except Exception as error:  # noqa: BLE001 - a boundary: the handler is detached and logged
                self._failed(info, event, error)

    def _failed(self, info: HandlerInfo, event: Event, error: Exception) -> None:
        self.detach(info.id)
        log.error(
            "telemetry handler %r failed on %r and was detached: %s",
            info.id,
            event,
            "".join(traceback.format_exception(error)).rstrip(),
        )
        self.execute(
            HANDLER_FAILURE,
            {"monotonic_time": time.monotonic()},
            {
                "handler_id": info.id,
                "handler_config": info.config,
                "event_name": event,
                "kind": "error",
                "reason": error,
                "stacktrace": traceback.extract_tb(error.__traceback__),
            },
        )

    @contextmanager
    def span(self, prefix: Event, metadata: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Emit ``prefix + ("start",)`` now and ``prefix + ("stop",)`` when the block
        ends, or ``prefix + ("exception",)`` if it raises (the exception propagates),
        as ``:telemetry.span``::

            with node.telemetry.span(("my_app", "render"), {"page": page}) as meta:
                html = render(page)
                meta["size"] = len(html)          # stop metadata: the start's plus this

        start measurements: ``monotonic_time``, ``system_time``; stop and exception:
        ``duration`` (seconds), ``monotonic_time``. Exception metadata adds ``kind``
        (``"error"``, or ``"cancelled"`` for a cancelled task), ``reason`` (the
        exception) and ``stacktrace``. Every event carries the same ``telemetry_span_context``.
        """
        _check_event(prefix)
        meta: dict[str, Any] = dict(metadata or {})
        meta["telemetry_span_context"] = object()
        start = time.perf_counter()
        self.execute((*prefix, "start"), {"monotonic_time": start, "system_time": time.time()}, dict(meta))
        try:
            yield meta
        except BaseException as error:
            now = time.perf_counter()
            kind = "error" if isinstance(error, Exception) else "cancelled"
            failure = {
                **meta,
                "kind": kind,
                "reason": error,
                "stacktrace": traceback.extract_tb(error.__traceback__),
            }
            self.execute((*prefix, "exception"), {"duration": now - start, "monotonic_time": now}, failure)
            raise
        now = time.perf_counter()
        self.execute((*prefix, "stop"), {"duration": now - start, "monotonic_time": now}, meta)


__all__ = [
    "CHANNEL_HANDLED_IN",
    "CHANNEL_JOINED",
    "EVENTS",
    "HANDLER_FAILURE",
    "NODE_DOWN",
    "NODE_UP",
    "PUBSUB_BROADCAST",
    "SOCKET_CONNECTED",
    "AlreadyAttached",
    "Event",
    "Handler",
    "HandlerInfo",
    "InvalidEvent",
    "Telemetry",
    "TelemetryError",
]
