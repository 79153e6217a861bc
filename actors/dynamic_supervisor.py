"""DynamicSupervisor: a supervisor of children started on demand (Elixir's
``DynamicSupervisor``, OTP's ``simple_one_for_one``).

Children are added with `start_child` and addressed by pid. The strategy is
``one_for_one``; ``max_children`` bounds how many may run at once (`start_child`
then raises `SupervisorError` ``max_children``). Restart intensity works as in
`Supervisor`. On shutdown every child is sent ``shutdown`` at the same time (their
order is not meaningful), and those still alive after their shutdown time are killed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._api import _me
from ._child import ChildSpec, should_restart, start_spec
from ._crash import safe_repr
from ._intensity import RestartIntensity
from ._pid import Pid, Ref
from .errors import InvalidChildSpec, StartError, SupervisorError
from .gen_server import From, GenServer, NoReply, Reply, Server, Stop, call, start_server
from .gen_server import stop as stop_server
from .messages import KILL, NORMAL, SHUTDOWN, Down, Exit, Reason, is_normal
from .supervisor import ChildCounts, ChildInfo

log = logging.getLogger("alight.actors.supervisor")

__all__ = ["DynamicSupervisor"]


@dataclass(frozen=True, slots=True)
class _TryAgain:
    spec: ChildSpec


class DynamicSupervisor(GenServer):
    """Start with `DynamicSupervisor.start_link`; add children with `start_child`."""

    default_shutdown = "infinity"

    async def init(self, max_children: int | None, max_restarts: int, max_seconds: float) -> None:
        _me().trap_exit = True
        self.max_children = max_children
        self.intensity = RestartIntensity(max_restarts, max_seconds)
        self.children: dict[Pid, ChildSpec] = {}

    @staticmethod
    async def start_link(  # type: ignore[override]
        *,
        max_children: int | None = None,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | None = None,
        timeout: float | None = None,
    ) -> Pid:
        """Start an empty dynamic supervisor linked to the caller."""
        _check(max_children, max_restarts, max_seconds)
        return await start_server(
            DynamicSupervisor, (max_children, max_restarts, max_seconds), name, timeout, link=True
        )

    @staticmethod
    async def start(  # type: ignore[override]
        *,
        max_children: int | None = None,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | None = None,
        timeout: float | None = None,
    ) -> Pid:
        """Like `start_link`, without the link."""
        _check(max_children, max_restarts, max_seconds)
        return await start_server(
            DynamicSupervisor, (max_children, max_restarts, max_seconds), name, timeout, link=False
        )

    @staticmethod
    def child_spec(  # type: ignore[override]
        *,
        id: Any = "dynamic_supervisor",  # noqa: A002 - OTP's field name
        max_children: int | None = None,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | None = None,
    ) -> ChildSpec:
        """A spec that runs a dynamic supervisor under another supervisor."""
        _check(max_children, max_restarts, max_seconds)

        async def start() -> Pid:
            return await DynamicSupervisor.start_link(
                max_children=max_children, max_restarts=max_restarts, max_seconds=max_seconds, name=name
            )

        return ChildSpec(id=id, start=start, shutdown="infinity", type="supervisor")

    @staticmethod
    async def stop(server: Server, reason: Reason = NORMAL, timeout: float | None = None) -> None:
        """Stop the supervisor: every child is shut down first, then it exits."""
        await stop_server(server, reason, timeout)

    @staticmethod
    async def start_child(sup: Server, spec: ChildSpec) -> Pid | None:
        """Start a child under ``sup``; raises `StartError` or `SupervisorError`."""
        answer = await call(sup, ("start_child", spec), timeout=None)
        if isinstance(answer, Exception):
            raise answer
        result: Pid | None = answer
        return result

    @staticmethod
    async def terminate_child(sup: Server, pid: Pid) -> None:
        """Stop the child ``pid``; `SupervisorError` ``not_found`` if it is not ours."""
        answer = await call(sup, ("terminate_child", pid), timeout=None)
        if isinstance(answer, Exception):
            raise answer

    @staticmethod
    async def which_children(sup: Server) -> list[ChildInfo]:
        result: list[ChildInfo] = await call(sup, ("which_children", None), timeout=None)
        return result

    @staticmethod
    async def count_children(sup: Server, timeout: float | None = None) -> ChildCounts:
        """Children by kind and state; with ``timeout``, a supervisor busy for longer
        (starting a child) raises `CallTimeout`, as any call does."""
        result: ChildCounts = await call(sup, ("count_children", None), timeout=timeout)
        return result

    async def handle_call(self, request: Any, from_: From) -> Reply | NoReply | Stop:
        if not (isinstance(request, tuple) and len(request) == 2):
            return Reply(SupervisorError("unknown_request", request))
        op, arg = request
        if op == "start_child":
            return Reply(await self._start(arg))
        if op == "terminate_child":
            if arg not in self.children:
                return Reply(SupervisorError("not_found", arg))
            await self._stop_all([arg])
            return Reply(None)
        if op == "which_children":
            return Reply([_info(pid, spec) for pid, spec in self.children.items()])
        if op == "count_children":
            specs = list(self.children.values())
            supervisors = sum(1 for s in specs if s.type == "supervisor")
            return Reply(ChildCounts(len(specs), len(specs), supervisors, len(specs) - supervisors))
        return Reply(SupervisorError("unknown_request", op))

    async def handle_info(self, message: Any) -> Stop | None:
        if type(message) is Exit:
            spec = self.children.pop(message.pid, None)
            if spec is None:
                return None
            if not is_normal(message.reason):
                log.error(
                    "dynamic supervisor %r: child %r exited: %s", _me().pid, message.pid, safe_repr(message.reason)
                )
            if should_restart(spec.restart, message.reason):
                return await self._restart(spec)
        elif type(message) is _TryAgain:
            return await self._restart(message.spec)
        return None

    async def terminate(self, reason: Reason) -> None:
        await self._stop_all(list(self.children))

    async def _start(self, spec: Any) -> Pid | Exception | None:
        if not isinstance(spec, ChildSpec):
            return InvalidChildSpec("spec", f"not a ChildSpec: {spec!r}")
        if self.max_children is not None and len(self.children) >= self.max_children:
            return SupervisorError("max_children")
        try:
            pid = await start_spec(spec)
        except Exception as error:  # noqa: BLE001 - returned to the caller of start_child
            return StartError(getattr(error, "reason", error))
        if pid is not None:
            self.children[pid] = spec
        return pid

    async def _restart(self, spec: ChildSpec) -> Stop | None:
        if not self.intensity.add(time.monotonic()):
            log.error("dynamic supervisor %r: reached max restart intensity; shutting down", _me().pid)
            return Stop(SHUTDOWN)
        try:
            pid = await start_spec(spec)
        except Exception as error:  # noqa: BLE001 - retried, counted as a restart
            log.error("dynamic supervisor %r: restart failed: %s", _me().pid, safe_repr(error))
            _me().put(_TryAgain(spec))
            return None
        if pid is not None:
            self.children[pid] = spec
        return None

    async def _stop_all(self, pids: list[Pid]) -> None:
        """Shut children down concurrently, each within its own shutdown time."""
        me = _me()
        node = me.node
        loop = asyncio.get_running_loop()
        pending: dict[Ref, tuple[Pid, float | None]] = {}
        for pid in pids:
            spec = self.children.pop(pid)
            ref = node.monitor(me, pid)
            node.unlink(me, pid)
            me.receive_nowait(_exit_from(pid), None)
            if spec.shutdown == "brutal_kill":
                node.exit(me.pid, pid, KILL)
                deadline = None
            else:
                node.exit(me.pid, pid, SHUTDOWN)
                deadline = None if spec.shutdown == "infinity" else loop.time() + float(spec.shutdown)  # type: ignore[arg-type]
            pending[ref] = (pid, deadline)
        while pending:
            deadlines = [d for _, d in pending.values() if d is not None]
            timeout = None if not deadlines else max(0.0, min(deadlines) - loop.time())
            down = await me.receive(lambda m: type(m) is Down and m.ref in pending, timeout, default=None)
            if down is not None:
                del pending[down.ref]
                continue
            now = loop.time()
            for ref, (pid, deadline) in list(pending.items()):
                if deadline is not None and deadline <= now:
                    log.warning("child %r did not stop within its shutdown time; killing it", pid)
                    node.exit(me.pid, pid, KILL)
                    pending[ref] = (pid, None)


def _exit_from(pid: Pid) -> Callable[[Any], bool]:
    return lambda m: type(m) is Exit and m.pid == pid


def _check(max_children: int | None, max_restarts: int, max_seconds: float) -> None:
    if max_children is not None and (
        not isinstance(max_children, int) or isinstance(max_children, bool) or max_children < 0
    ):
        raise ValueError(f"max_children must be an int >= 0 or None, not {max_children!r}")
    RestartIntensity(max_restarts, max_seconds)


def _info(pid: Pid, spec: ChildSpec) -> ChildInfo:
    assert spec.shutdown is not None
    return ChildInfo(spec.id, pid, spec.type, spec.restart, spec.shutdown)
