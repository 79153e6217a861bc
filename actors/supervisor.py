"""Supervisor: starts children in order, restarts them by strategy, stops them in
reverse order. OTP's ``supervisor`` semantics::

    children = [
        Cache.child_spec(id="cache"),
        ChildSpec(id="worker", start=lambda: spawn_link(worker_loop), restart="transient"),
    ]
    sup = await Supervisor.start_link(children, strategy="one_for_one", max_restarts=3, max_seconds=5)

Strategies: ``one_for_one`` restarts the child that exited; ``one_for_all`` stops
all the others (in reverse order) and restarts all; ``rest_for_one`` stops and
restarts the children started after it too. More than ``max_restarts`` restarts in
``max_seconds`` and the supervisor stops all its children and exits with
``shutdown``, so its own supervisor decides (escalation). A child that fails to
start during a restart is retried, each try counting towards the intensity.

`start_link` returns once every child has started; if one fails, the ones already
started are stopped and `StartError` carries ``("failed_to_start_child", id, reason)``.
A child whose start returns None (or raises `Ignored`) is kept as not running, except
a temporary one, which is dropped (OTP). The supervisor's own ``terminate`` (on
`stop`, its parent's ``shutdown``, or an intensity breach) stops every child in
reverse start order, each within its ``shutdown``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ._api import _me
from ._child import ChildSpec, ChildType, Restart, Shutdown, check_specs, should_restart, shutdown_child, start_spec
from ._crash import safe_repr
from ._intensity import RestartIntensity
from ._pid import Pid
from .errors import InvalidChildSpec, StartError, SupervisorError
from .gen_server import From, GenServer, NoReply, Reply, Server, Stop, call, start_server
from .gen_server import stop as stop_server
from .messages import NORMAL, SHUTDOWN, Exit, Reason, is_normal

log = logging.getLogger("alight.actors.supervisor")

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")

__all__ = [
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "Supervisor",
    "count_children",
    "delete_child",
    "restart_child",
    "start_child",
    "terminate_child",
    "which_children",
]


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One row of `which_children`: ``pid`` is None when the child is not running."""

    id: Hashable
    pid: Pid | None
    type: ChildType
    restart: Restart
    shutdown: Shutdown


@dataclass(frozen=True, slots=True)
class ChildCounts:
    """`count_children`: specs, running children, and specs per type."""

    specs: int
    active: int
    supervisors: int
    workers: int


@dataclass(slots=True)
class _Child:
    spec: ChildSpec
    pid: Pid | None = None


@dataclass(frozen=True, slots=True)
class _TryAgain:
    child_id: Hashable


def _now() -> float:
    return time.monotonic()


class Supervisor(GenServer):
    """A supervisor process; build one with `Supervisor.start_link` or as a child
    with `Supervisor.child_spec`. Users do not subclass it."""

    default_shutdown = "infinity"

    async def init(
        self, children: list[ChildSpec], strategy: Strategy, max_restarts: int, max_seconds: float
    ) -> Stop | None:
        _me().trap_exit = True
        self.strategy = strategy
        self.intensity = RestartIntensity(max_restarts, max_seconds)
        self.children: list[_Child] = []
        for spec in children:
            try:
                pid = await start_spec(spec)
            except Exception as error:  # noqa: BLE001 - a child's start failure fails our start
                await self._stop_children(self.children)
                return Stop(("failed_to_start_child", spec.id, getattr(error, "reason", error)))
            if pid is not None or spec.restart != "temporary":
                # OTP keeps an ignored child's spec, except a temporary one's.
                self.children.append(_Child(spec, pid))
        return None

    # -- public API ----------------------------------------------------------------

    @staticmethod
    async def start_link(  # type: ignore[override]
        children: Iterable[ChildSpec] = (),
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | None = None,
        timeout: float | None = None,
    ) -> Pid:
        """Start a supervisor linked to the caller, and its children in order."""
        specs = _check(children, strategy, max_restarts, max_seconds)
        return await start_server(Supervisor, (specs, strategy, max_restarts, max_seconds), name, timeout, link=True)

    @staticmethod
    async def start(  # type: ignore[override]
        children: Iterable[ChildSpec] = (),
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | None = None,
        timeout: float | None = None,
    ) -> Pid:
        """Like `start_link`, without the link."""
        specs = _check(children, strategy, max_restarts, max_seconds)
        return await start_server(Supervisor, (specs, strategy, max_restarts, max_seconds), name, timeout, link=False)

    @staticmethod
    def child_spec(  # type: ignore[override]
        children: Iterable[ChildSpec] = (),
        *,
        id: Hashable = "supervisor",  # noqa: A002 - OTP's field name
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | None = None,
        restart: Restart = "permanent",
        shutdown: Shutdown = "infinity",
    ) -> ChildSpec:
        """A spec that runs a nested supervisor (type ``supervisor``)."""
        specs = _check(children, strategy, max_restarts, max_seconds)

        async def start() -> Pid:
            return await Supervisor.start_link(
                specs, strategy=strategy, max_restarts=max_restarts, max_seconds=max_seconds, name=name
            )

        return ChildSpec(id=id, start=start, restart=restart, shutdown=shutdown, type="supervisor")

    @staticmethod
    async def stop(server: Server, reason: Reason = NORMAL, timeout: float | None = None) -> None:
        """Stop the supervisor: its children stop in reverse order first."""
        await stop_server(server, reason, timeout)

    # -- callbacks ---------------------------------------------------------------

    async def handle_call(self, request: Any, from_: From) -> Reply | NoReply | Stop:
        if not (isinstance(request, tuple) and len(request) == 2):
            return Reply(SupervisorError("unknown_request", request))
        op, arg = request
        if op == "which_children":
            return Reply([_info(child) for child in self.children])
        if op == "count_children":
            return Reply(_counts(self.children))
        if op == "start_child":
            return Reply(await self._start_new(arg))
        if op == "terminate_child":
            return Reply(await self._terminate(arg))
        if op == "restart_child":
            return Reply(await self._restart_stopped(arg))
        if op == "delete_child":
            return Reply(self._delete(arg))
        return Reply(SupervisorError("unknown_request", op))

    async def handle_info(self, message: Any) -> Stop | None:
        if type(message) is Exit:
            return await self._child_exited(message.pid, message.reason)
        if type(message) is _TryAgain:
            child = self._find(message.child_id)
            if child is not None and child.pid is None:
                return await self._restart(child, "try_again")
        return None

    async def terminate(self, reason: Reason) -> None:
        await self._stop_children(self.children)

    # -- restarts ----------------------------------------------------------------

    async def _child_exited(self, pid: Pid, reason: Reason) -> Stop | None:
        child = next((c for c in self.children if c.pid == pid), None)
        if child is None:
            return None
        child.pid = None
        if not is_normal(reason):
            log.error("supervisor %r: child %r (%r) exited: %s", _me().pid, child.spec.id, pid, safe_repr(reason))
        if child.spec.restart == "temporary":
            self.children.remove(child)
            return None
        if not should_restart(child.spec.restart, reason):
            return None
        return await self._restart(child, reason)

    async def _restart(self, child: _Child, reason: Reason) -> Stop | None:
        if not self.intensity.add(_now()):
            log.error(
                "supervisor %r: reached max restart intensity (%d in %s s); shutting down",
                _me().pid,
                self.intensity.max_restarts,
                self.intensity.period,
            )
            return Stop(SHUTDOWN)
        index = self.children.index(child)
        if self.strategy == "one_for_one":
            group = [child]
        elif self.strategy == "one_for_all":
            group = list(self.children)
        else:
            group = self.children[index:]
        await self._stop_children([c for c in group if c is not child])
        for member in group:
            if member.spec.restart == "temporary":
                # A temporary child is never restarted, not even with its siblings.
                self.children.remove(member)
                continue
            if member.pid is not None:
                continue
            try:
                member.pid = await start_spec(member.spec)
            except Exception as error:  # noqa: BLE001 - a failed restart is retried, counted as a restart
                log.error("supervisor %r: restarting child %r failed: %s", _me().pid, member.spec.id, safe_repr(error))
                _me().put(_TryAgain(member.spec.id))
                return None
        return None

    async def _stop_children(self, children: list[_Child]) -> None:
        for child in reversed(children):
            if child.pid is not None:
                pid, child.pid = child.pid, None
                await shutdown_child(_me(), pid, child.spec.shutdown)

    # -- operations ----------------------------------------------------------------

    def _find(self, child_id: Hashable) -> _Child | None:
        return next((c for c in self.children if c.spec.id == child_id), None)

    async def _start_new(self, spec: ChildSpec) -> Pid | Exception | None:
        if not isinstance(spec, ChildSpec):
            return InvalidChildSpec("spec", f"not a ChildSpec: {spec!r}")
        existing = self._find(spec.id)
        if existing is not None:
            return SupervisorError("already_started" if existing.pid is not None else "already_present", spec.id)
        try:
            pid = await start_spec(spec)
        except Exception as error:  # noqa: BLE001 - returned to the caller of start_child
            return StartError(getattr(error, "reason", error))
        if pid is not None or spec.restart != "temporary":
            self.children.append(_Child(spec, pid))
        return pid

    async def _terminate(self, child_id: Hashable) -> Exception | None:
        child = self._find(child_id)
        if child is None:
            return SupervisorError("not_found", child_id)
        await self._stop_children([child])
        if child.spec.restart == "temporary":
            self.children.remove(child)
        return None

    async def _restart_stopped(self, child_id: Hashable) -> Pid | Exception | None:
        child = self._find(child_id)
        if child is None:
            return SupervisorError("not_found", child_id)
        if child.pid is not None:
            return SupervisorError("running", child_id)
        try:
            child.pid = await start_spec(child.spec)
        except Exception as error:  # noqa: BLE001 - returned to the caller of restart_child
            return StartError(getattr(error, "reason", error))
        return child.pid

    def _delete(self, child_id: Hashable) -> Exception | None:
        child = self._find(child_id)
        if child is None:
            return SupervisorError("not_found", child_id)
        if child.pid is not None:
            return SupervisorError("running", child_id)
        self.children.remove(child)
        return None


def _check(children: Iterable[ChildSpec], strategy: str, max_restarts: int, max_seconds: float) -> list[ChildSpec]:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    RestartIntensity(max_restarts, max_seconds)  # validates both
    return check_specs(list(children))


def _info(child: _Child) -> ChildInfo:
    spec = child.spec
    assert spec.shutdown is not None
    return ChildInfo(spec.id, child.pid, spec.type, spec.restart, spec.shutdown)


def _counts(children: list[_Child]) -> ChildCounts:
    return ChildCounts(
        specs=len(children),
        active=sum(1 for c in children if c.pid is not None),
        supervisors=sum(1 for c in children if c.spec.type == "supervisor"),
        workers=sum(1 for c in children if c.spec.type == "worker"),
    )


# -- client functions ------------------------------------------------------------


async def _request(sup: Server, op: str, arg: Any = None, timeout: float | None = None) -> Any:
    answer = await call(sup, (op, arg), timeout=timeout)
    if isinstance(answer, Exception):
        raise answer
    return answer


async def which_children(sup: Server, timeout: float | None = None) -> list[ChildInfo]:
    """Every child in start order, with its pid (None if not running). Works on a
    `DynamicSupervisor` too. With ``timeout``, a supervisor busy for longer (starting
    or restarting a child) raises `CallTimeout`, as any call does."""
    result: list[ChildInfo] = await _request(sup, "which_children", timeout=timeout)
    return result


async def count_children(sup: Server, timeout: float | None = None) -> ChildCounts:
    """Children by kind and state (OTP's ``count_children``); ``timeout`` as for
    `which_children`."""
    result: ChildCounts = await _request(sup, "count_children", timeout=timeout)
    return result


async def start_child(sup: Server, spec: ChildSpec) -> Pid | None:
    """Add and start a child (last in order); raises `StartError` or `SupervisorError`
    (``already_started`` / ``already_present``) as OTP returns them."""
    result: Pid | None = await _request(sup, "start_child", spec)
    return result


async def terminate_child(sup: Server, child_id: Hashable) -> None:
    """Stop a child by id, keeping its spec (a temporary child's spec is removed)."""
    await _request(sup, "terminate_child", child_id)


async def restart_child(sup: Server, child_id: Hashable) -> Pid | None:
    """Start a stopped child again; `SupervisorError` ``running`` if it runs."""
    result: Pid | None = await _request(sup, "restart_child", child_id)
    return result


async def delete_child(sup: Server, child_id: Hashable) -> None:
    """Remove a stopped child's spec; `SupervisorError` ``running`` if it runs."""
    await _request(sup, "delete_child", child_id)
