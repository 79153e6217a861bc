"""Prometheus metrics of an endpoint, on the maintained ``prometheus-client`` library.

``metrics = EndpointMetrics(endpoint)`` extends the endpoint (an `Extension`) to serve
``GET /metrics`` in the Prometheus text format (OpenMetrics when the scraper
asks for it in ``Accept``). Each endpoint has its own `CollectorRegistry`
(``metrics.registry``; the library's global default registry is never used),
so two endpoints or two nodes in one interpreter share nothing. Register your own
metrics on that registry to serve them at the same address.

Two kinds of metrics, every one labelled with the ``node`` that serves the scrape
(nodes of a cluster share the HTTP port, so any of them may answer):

- fed by telemetry handlers (`alight.telemetry`), attached by a process in the
  endpoint's tree while it runs (detached when it stops): connects, joins and
  ``handle_in`` (counters and duration histograms), broadcasts and their local
  deliveries, nodes coming up and going down;
- read at scrape time by a collector: processes and the messages waiting in their
  mailboxes, process crashes, open connections, channels and long-poll sessions,
  the endpoint's and its transports' counters (invalid frames, refused
  connections, slow-consumer disconnects, ...), PubSub counters and, on a clustered
  node, peers up and the ZeroMQ links' counters (dropped messages, bad frames, ...).

Label values that come from clients (``handle_in`` event names) are bounded: past
`MAX_EVENT_LABELS` distinct values, new ones are counted as ``"other"``, and so is a
name longer than `MAX_EVENT_LABEL_LENGTH`, so a client cannot grow the scrape without
bound (in count or in size). Topics are never labels for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from .actors import CallExit, CallTimeout, ChildSpec, DynamicSupervisor, NoProc, Pid, receive, spawn_link
from .channels.extension import Extension, Phase
from .telemetry import CHANNEL_HANDLED_IN, CHANNEL_JOINED, NODE_DOWN, NODE_UP, PUBSUB_BROADCAST, SOCKET_CONNECTED, Event
from .transports.http import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from .actors import Node
    from .channels.endpoint import Endpoint

METRICS_PATH = "/metrics"
"""Where `EndpointMetrics` serves the scrape (``path`` changes it)."""

NAMESPACE = "alight"
"""The prefix of every metric name."""

DURATION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Histogram buckets (seconds) for connect, join and ``handle_in`` durations."""

MAX_EVENT_LABELS = 100
"""Distinct ``handle_in`` event names labelled per endpoint; later ones become ``"other"``."""

MAX_EVENT_LABEL_LENGTH = 64
"""Longest ``handle_in`` event name used as a label; a longer one is ``"other"``."""

REFRESH_TIMEOUT = 2.0
"""Seconds a scrape waits for a supervisor's child count before using the last one."""

OTHER = "other"


class _BoundedLabels:
    """Maps client-chosen strings to label values: at most ``limit`` distinct ones, each
    at most ``max_length`` characters; anything past either bound is `OTHER`."""

    def __init__(self, limit: int, max_length: int) -> None:
        self.limit = limit
        self.max_length = max_length
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) < self.limit and len(value) <= self.max_length:
            self._seen.add(value)
            return value
        return OTHER


class EndpointMetrics(Extension):
    """The Prometheus metrics of ``endpoint``; see the module docstring.

    Extends ``endpoint`` as it is built: `child_spec` starts with the endpoint's tree
    (`Phase.TELEMETRY`, before any connection can arrive) and `scrape` is the
    ``GET <path>`` handler. Add metrics of your own to `registry`.
    """

    phase = Phase.TELEMETRY

    def __init__(
        self, endpoint: Endpoint, *, path: str = METRICS_PATH, buckets: tuple[float, ...] = DURATION_BUCKETS
    ) -> None:
        self.endpoint = endpoint
        self.path = path
        self.registry = CollectorRegistry()
        """This endpoint's registry (never the library's global one)."""
        self._events = _BoundedLabels(MAX_EVENT_LABELS, MAX_EVENT_LABEL_LENGTH)
        self._channels = 0
        self._longpoll_sessions = 0
        self._node_name = ""
        r, ns = self.registry, NAMESPACE
        self.connects = Counter(
            "socket_connects",
            "Socket connects, by result",
            ["node", "transport", "vsn", "result"],
            namespace=ns,
            registry=r,
        )
        self.connect_duration = Histogram(
            "socket_connect_duration_seconds",
            "Time Socket.connect took",
            ["node", "transport"],
            namespace=ns,
            registry=r,
            buckets=buckets,
        )
        self.joins = Counter(
            "channel_joins", "Channel joins, by result", ["node", "channel", "result"], namespace=ns, registry=r
        )
        self.join_duration = Histogram(
            "channel_join_duration_seconds",
            "Time Channel.join took",
            ["node", "channel"],
            namespace=ns,
            registry=r,
            buckets=buckets,
        )
        self.handle_in_duration = Histogram(
            "channel_handle_in_duration_seconds",
            "Time Channel.handle_in took, by channel and event",
            ["node", "channel", "event"],
            namespace=ns,
            registry=r,
            buckets=buckets,
        )
        self.dispatches = Counter(
            "pubsub_dispatches",
            "Broadcasts dispatched on this node, with or without subscribers",
            ["node"],
            namespace=ns,
            registry=r,
        )
        self.dispatch_deliveries = Counter(
            "pubsub_dispatch_deliveries", "Local deliveries of those dispatches", ["node"], namespace=ns, registry=r
        )
        self.node_ups = Counter("cluster_node_ups", "Peers that came up", ["node"], namespace=ns, registry=r)
        self.node_downs = Counter(
            "cluster_node_downs", "Peers declared down, by reason", ["node", "reason"], namespace=ns, registry=r
        )
        self.registry.register(_LiveCollector(self))
        endpoint.extend(self)

    # -- the extension ------------------------------------------------------------------

    def installed(self, endpoint: Endpoint) -> None:
        endpoint.route("GET", self.path, self.scrape)

    def child_specs(self, endpoint: Endpoint) -> Sequence[ChildSpec]:
        return [self.child_spec()]

    # -- the process that holds the telemetry handlers --------------------------------

    def child_spec(self) -> ChildSpec:
        """A process that attaches the telemetry handlers while it runs (the endpoint
        starts it after PubSub, before any connection can arrive)."""
        return ChildSpec(id="metrics", start=lambda: spawn_link(self._run), shutdown=1.0)

    @property
    def handler_id(self) -> str:
        """The id of the telemetry handler (see ``node.telemetry.list_handlers()``)."""
        return f"alight.metrics:{self.endpoint.name}:{id(self):x}"

    async def _run(self) -> None:
        node = self.endpoint.node
        self._node_name = node.name
        telemetry = node.telemetry
        events: list[Event] = [
            SOCKET_CONNECTED,
            CHANNEL_JOINED,
            CHANNEL_HANDLED_IN,
            PUBSUB_BROADCAST,
            NODE_UP,
            NODE_DOWN,
        ]
        telemetry.attach_many(self.handler_id, events, self._handle)
        try:
            while True:
                await receive()  # nothing to do but hold the handlers; stray messages dropped
        finally:
            telemetry.detach(self.handler_id)

    def _handle(self, event: Event, measurements: Mapping[str, Any], metadata: Mapping[str, Any], config: Any) -> None:
        endpoint = self.endpoint
        node = self._node_name
        if event == PUBSUB_BROADCAST:
            if metadata["pubsub"] is endpoint.pubsub:
                self.dispatches.labels(node).inc()
                self.dispatch_deliveries.labels(node).inc(measurements["local_deliveries"])
        elif event == NODE_UP:
            self.node_ups.labels(node).inc()
        elif event == NODE_DOWN:
            self.node_downs.labels(node, metadata["reason"]).inc()
        elif metadata["endpoint"] is not endpoint:
            return
        elif event == CHANNEL_HANDLED_IN:
            channel = metadata["channel"].__qualname__
            event_label = self._events(metadata["event"])
            self.handle_in_duration.labels(node, channel, event_label).observe(measurements["duration"])
        elif event == CHANNEL_JOINED:
            channel = metadata["channel"].__qualname__
            self.joins.labels(node, channel, metadata["result"]).inc()
            self.join_duration.labels(node, channel).observe(measurements["duration"])
        elif event == SOCKET_CONNECTED:
            transport = metadata["transport"]
            self.connects.labels(node, transport, metadata["vsn"], metadata["result"]).inc()
            self.connect_duration.labels(node, transport).observe(measurements["duration"])

    # -- the scrape ---------------------------------------------------------------------

    async def refresh(self) -> None:
        """Read what needs a call to a process (channel and long-poll session counts
        from their supervisors); `scrape` does this before rendering. Call it from a
        process before rendering `registry` yourself."""
        endpoint = self.endpoint
        self._channels = await _active_children(endpoint.channel_supervisor, self._channels)
        if endpoint.longpoll is not None:
            self._longpoll_sessions = await _active_children(endpoint.longpoll.supervisor, self._longpoll_sessions)

    async def scrape(self, request: HttpRequest) -> HttpResponse:
        """``GET /metrics``: every metric of `registry`, in the format ``Accept`` asks
        for (Prometheus text 0.0.4 by default, or OpenMetrics; a malformed ``Accept``
        gets the default)."""
        await self.refresh()
        try:
            encoder, content_type = choose_encoder(request.header("accept") or "")
        except (TypeError, ValueError):
            # A version the library cannot compare ("version=abc"): the default format,
            # as for any Accept it does not know, rather than a 500.
            encoder, content_type = choose_encoder("")
        return HttpResponse(
            200, (("content-type", content_type), ("cache-control", "no-store")), encoder(self.registry)
        )


async def _active_children(sup: Pid, last: int) -> int:
    """How many children ``sup`` runs, or ``last`` if it cannot say within
    `REFRESH_TIMEOUT` (busy starting children, or being restarted itself): a scrape
    answers with the previous count rather than a 500."""
    try:
        return (await DynamicSupervisor.count_children(sup, timeout=REFRESH_TIMEOUT)).active
    except (NoProc, CallExit, CallTimeout):
        return last


class _LiveCollector(Collector):
    """Gauges and counters read from the node and the endpoint at scrape time."""

    def __init__(self, metrics: EndpointMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        # Nothing to check at registration (names are fixed below, unlike the
        # library's metrics); without this the registry would call `collect` early.
        return []

    def collect(self) -> Iterator[Metric]:
        endpoint = self.metrics.endpoint
        node = endpoint.node
        labels = [node.name]
        yield from _node_metrics(node, labels)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(f"{NAMESPACE}_{name}", doc, labels=["node"])
            family.add_metric(labels, value)
            return family

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(f"{NAMESPACE}_{name}", doc, labels=["node"])
            family.add_metric(labels, value)
            return family

        stats = endpoint.stats
        yield gauge("connections", "Open socket connections", stats.connections)
        yield gauge("channels", "Joined channels (processes)", self.metrics._channels)
        yield gauge("longpoll_sessions", "Long-poll sessions", self.metrics._longpoll_sessions)
        yield counter("endpoint_joins", "Successful joins", stats.joins)
        yield counter(
            "endpoint_invalid_frames", "Connections closed for a frame that did not decode", stats.invalid_frames
        )
        yield counter(
            "endpoint_refused_messages",
            "Messages refused with an error reply (payload too deep, ...)",
            stats.refused_messages,
        )
        yield counter("endpoint_refused", "Connections refused before connect", stats.refused)
        transports = endpoint.transport_stats
        yield gauge("http_connections", "Open HTTP connections of the native listener", transports.connections)
        yield gauge("http_websockets", "Open WebSockets of the native listener", transports.websockets)
        for name, doc in _HTTP_COUNTERS:
            yield counter(f"http_{name}", doc, getattr(transports, name))
        for name, doc in _CONNECTION_COUNTERS:
            yield counter(f"transport_{name}", doc, getattr(transports, name))
        if endpoint.presence is not None:
            yield gauge("presences", "Presences this node sees, every topic", endpoint.presence.tracker.count())
        pubsub = endpoint.pubsub
        yield gauge("pubsub_topics", "Topics with a subscriber on this node", len(pubsub.topics()))
        for name, doc in _PUBSUB_COUNTERS:
            yield counter(f"pubsub_{name}", doc, getattr(pubsub.stats, name))
        yield from _cluster_metrics(node, labels)


_HTTP_COUNTERS = (
    ("connections_total", "HTTP connections accepted"),
    ("requests", "HTTP requests"),
    ("request_crashes", "HTTP requests whose handler crashed (500)"),
    ("bad_requests", "Malformed HTTP requests (400)"),
    ("request_timeouts", "HTTP requests whose head or body did not arrive in time (408)"),
    ("refused_per_address", "HTTP connections closed on accept: too many from one address"),
    ("partial_frame_closes", "WebSockets closed (1013) holding the most of the unfinished-frame budget"),
    ("frame_timeouts", "WebSockets closed (1008) for a frame not finished in time"),
    ("abnormal_closes", "WebSockets that ended without a close frame (1006): client gone, or a proxy closed it"),
    ("frames_in", "WebSocket frames received"),
    ("frames_out", "WebSocket frames sent"),
    ("bytes_in", "WebSocket bytes received"),
    ("bytes_out", "WebSocket bytes sent"),
)
_CONNECTION_COUNTERS = (
    ("slow_consumer_disconnects", "Connections closed as slow consumers (every transport)"),
    ("idle_timeouts", "WebSockets closed for idleness (every transport)"),
    ("frames_too_big", "Client frames over max_frame_size: WebSocket 1009, long-poll 413 (every transport)"),
)
_PUBSUB_COUNTERS = (
    ("broadcasts", "Broadcasts dispatched to at least one local subscriber"),
    ("deliveries", "Broadcasts delivered as messages"),
    ("fastlane_writes", "Broadcasts written straight to a connection (fastlane)"),
    ("encode_errors", "Broadcasts a subscriber's serializer could not encode"),
)
_LINK_COUNTERS = (
    ("frames_sent", "Cluster frames sent"),
    ("messages_sent", "Cluster messages sent"),
    ("frames_received", "Cluster frames received"),
    ("messages_received", "Cluster messages received"),
    ("bad_frames", "Cluster frames that did not decode"),
    ("dropped", "Cluster messages dropped (a peer's queue full, or unpicklable)"),
    ("send_retries", "Times a link was at its high-water mark"),
    ("unconfirmed_at_close", "Cluster messages not acknowledged when their link closed (maybe lost)"),
    ("stray_dropped", "Cluster messages dropped: from a peer declared down, before it reconnected"),
)


def _node_metrics(node: Node, labels: list[str]) -> Iterator[Metric]:
    processes = node.processes()
    count = GaugeMetricFamily(f"{NAMESPACE}_processes", "Live processes on the node", labels=["node"])
    count.add_metric(labels, len(processes))
    yield count
    waiting = GaugeMetricFamily(f"{NAMESPACE}_mailbox_messages", "Messages waiting in every mailbox", labels=["node"])
    waiting.add_metric(labels, sum(len(proc) for proc in processes))
    yield waiting
    crashes = CounterMetricFamily(f"{NAMESPACE}_process_crashes", "Processes that crashed", labels=["node"])
    crashes.add_metric(labels, node.crashes)
    yield crashes
    blocked = CounterMetricFamily(
        f"{NAMESPACE}_watchdog_reports", "Times the watchdog saw a process block the loop", labels=["node"]
    )
    blocked.add_metric(labels, node.watchdog.reported)
    yield blocked


def _cluster_metrics(node: Node, labels: list[str]) -> Iterator[Metric]:
    if node.remote is None:
        return
    from .cluster import distribution_of  # only on a clustered node: no ZeroMQ import otherwise

    distribution = distribution_of(node)
    if distribution is None:
        return
    stats = distribution.stats
    up = GaugeMetricFamily(f"{NAMESPACE}_cluster_nodes_up", "Peers up", labels=["node"])
    up.add_metric(labels, stats.nodes_up)
    yield up
    queued = GaugeMetricFamily(f"{NAMESPACE}_cluster_queued", "Messages queued for peers", labels=["node"])
    queued.add_metric(labels, stats.links.queued)
    yield queued
    for name, doc in _LINK_COUNTERS:
        family = CounterMetricFamily(f"{NAMESPACE}_cluster_{name}", doc, labels=["node"])
        family.add_metric(labels, getattr(stats.links, name))
        yield family


__all__ = [
    "DURATION_BUCKETS",
    "MAX_EVENT_LABEL_LENGTH",
    "MAX_EVENT_LABELS",
    "METRICS_PATH",
    "NAMESPACE",
    "EndpointMetrics",
]
