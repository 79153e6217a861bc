"""Endpoint extensions: how presence, long-poll, metrics, the dashboard and the cluster
(and extensions of your own) attach to an `Endpoint` without the endpoint knowing them.

An extension is an object with a `phase` and three optional hooks; subclass
`Extension` and override what you need (``examples/clock.py`` is a whole one)::

    class Clock(Extension):
        phase = Phase.SERVICES

        def installed(self, endpoint):              # at endpoint.extend(self)
            endpoint.route("GET", "/clock", self.page)

        def child_specs(self, endpoint):            # as the endpoint's tree starts
            async def start():
                return spawn_link(self.run, endpoint)
            return [ChildSpec(id="clock", start=start)]

    app = Endpoint(extensions=[Clock()])            # or app.extend(Clock())

On an orderly stop the endpoint drains first (`alight.channels.drainer`): every
extension's `draining` hook runs, then the connections close batch by batch.

What an extension may use of the endpoint: ``route`` and ``socket`` (at `installed`);
``node``, ``pubsub``, ``broadcast``, ``stats`` and ``transport_stats``,
``secret_key_base``, ``connection_limits``, ``start_socket`` and ``origin_allowed`` once it runs;
``extensions`` to find another extension. Telemetry handlers belong to a process of
the extension's own (attach them in its child, so that they go when it stops: see
`alight.metrics`).

The endpoint's tree starts, in this order (and stops in reverse)::

    pubsub                      the endpoint's own
    Phase.TELEMETRY children    telemetry handlers that must see every event (metrics)
    Phase.CLUSTER children      what makes PubSub and presence cluster-wide
    Phase.STATE children        state channels read (presence)
    channels                    the endpoint's DynamicSupervisor of channel processes
    Phase.SESSIONS children     transports' sessions (long-poll)
    Phase.SERVICES children     readers of all of the above (the dashboard's collector)
    http                        the native listener, when the endpoint has a port
    drainer                     drains on an orderly stop (stopped first)

`child_specs` of every extension is called in phase order (installation order within
a phase) as the tree starts, so an extension of an earlier phase may configure one of
a later phase (the cluster sets presence's replication before presence starts).

A node's ``remote`` that implements `EndpointAttachment` (the cluster's `Distribution`
does) adds its extension to every endpoint that starts on that node: an endpoint on a
clustered node is cluster-wide with no change to the app.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..transports.http import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from ..actors import ChildSpec, Pid
    from .endpoint import Endpoint


class Phase(IntEnum):
    """Where an extension's children start in the endpoint's tree (module docstring)."""

    TELEMETRY = 10
    CLUSTER = 20
    STATE = 30
    SESSIONS = 50
    SERVICES = 60


class Extension:
    """Base of endpoint extensions; every hook is optional (module docstring)."""

    phase: Phase = Phase.SERVICES
    """Where the extension's children start."""

    def installed(self, endpoint: Endpoint) -> None:
        """Called once, by ``endpoint.extend(self)``: mount routes and sockets here."""

    def child_specs(self, endpoint: Endpoint) -> Sequence[ChildSpec]:
        """The children to start in the endpoint's tree, in `phase`; called as the
        tree starts (the endpoint's PubSub exists). Raising fails the start."""
        return ()

    async def handle_http(self, endpoint: Endpoint, request: HttpRequest) -> HttpResponse | None:
        """A chance to answer an HTTP request before the endpoint's routes (long-poll
        serves ``<mount>/longpoll`` this way); None passes it on. Runs in the request's
        process."""
        return None

    async def draining(self, endpoint: Endpoint) -> Sequence[Pid]:
        """The endpoint drains (an orderly stop, `alight.channels.drainer`): it has
        stopped accepting connections and is about to close them batch by batch. Do
        what must happen before (presence leaves the cluster) and return the processes
        to stop with the connections, batch by batch (long-poll sessions). Runs in the
        drainer's process; raising is logged and the drain goes on."""
        return ()


@runtime_checkable
class EndpointAttachment(Protocol):
    """A node's ``remote`` that extends every endpoint started on the node."""

    def endpoint_extension(self, endpoint: Endpoint) -> Extension | None:
        """The extension to add to ``endpoint`` as it starts (None: nothing)."""


__all__ = ["EndpointAttachment", "Extension", "Phase"]
