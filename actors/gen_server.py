"""GenServer: a process that serves calls, casts and messages with callbacks.

Subclass `GenServer` and override what you need::

    class Counter(GenServer):
        async def init(self, start: int) -> None:
            self.count = start

        async def handle_call(self, request, from_):
            if request == "get":
                return Reply(self.count)
            return Stop("bad_request", reply="no")

        async def handle_cast(self, request):
            self.count += request

    pid = await Counter.start_link(10, name="counter")
    await call("counter", "get")   # -> 10

The instance holds the state; callbacks return effects for the runtime to perform:

- ``handle_call`` returns `Reply(value)`, `NoReply()` (reply later with `reply`,
  from any process) or `Stop(reason, reply=...)`;
- ``handle_cast`` and ``handle_info`` return None (or `NoReply()`) or `Stop(reason)`;
- ``init`` returns None, `Ignore()` or `Stop(reason)`, or raises: a failed ``init``
  makes `start`/`start_link` raise `StartError` with the reason, and the new process
  exits without sending an exit signal to the starter.

Any other return value is an error (`InvalidReturn`) that lists the accepted shapes
and crashes the server, as a bad return crashes an Erlang gen_server.

``terminate(reason)`` runs whenever the server stops, except on ``kill``: after a
`Stop` (a call's reply is sent after ``terminate``, as in OTP), on `stop`, when a
callback raises (the exception is the reason), and on any exit signal (a
supervisor's ``shutdown``, a linked crash). OTP only runs it for exit signals when
the server traps exits; Python lets a cancelled coroutine clean up, so alight always
does, and a supervisor's shutdown timeout still bounds how long it may take. A
server that traps exits gets its parent's exit signal as a stop, not as
``handle_info`` (the parent is the starter of `start_link`; a server started with
`start` has none).

A name given to `start`/`start_link` is registered before ``init`` runs; if it is
taken, `StartError` carries ``("already_started", pid)`` and the new process exits
``"normal"`` (OTP 26).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from ._api import _me
from ._child import ChildSpec, Restart, Shutdown
from ._pid import Pid, Ref
from .errors import CallExit, CallTimeout, ExitProcess, Ignored, InvalidReturn, NameTaken, NoProc, StartError
from .messages import KILLED, NOPROC, NORMAL, Down, Exit, Reason

if TYPE_CHECKING:
    from ._process import Process

Server = Pid | str
"""A server is addressed by pid or by registered name."""

DEFAULT_CALL_TIMEOUT = 5.0
"""Seconds a `call` waits for its reply, as OTP's 5 000 ms default."""

_NO_REPLY: Any = object()


# -- effects returned by callbacks ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """Reply ``value`` to the caller and go on."""

    value: Any = None


@dataclass(frozen=True, slots=True)
class NoReply:
    """Go on without replying now (for a call: reply later with `reply`)."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop the server with ``reason`` after replying ``reply`` (for a call, if given)."""

    reason: Reason = NORMAL
    reply: Any = _NO_REPLY


@dataclass(frozen=True, slots=True)
class Ignore:
    """From ``init``: start nothing; a supervisor records the child as not running."""


@dataclass(frozen=True, slots=True)
class From:
    """Who is waiting for a call's reply; pass it to `reply`."""

    pid: Pid
    ref: Ref


# -- messages of the protocol (private) -------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call:
    sender: Pid
    ref: Ref
    request: Any


@dataclass(frozen=True, slots=True)
class _Cast:
    request: Any


@dataclass(frozen=True, slots=True)
class _Reply:
    ref: Ref
    value: Any


@dataclass(frozen=True, slots=True)
class _SystemStop:
    ref: Ref
    reason: Reason


@dataclass(frozen=True, slots=True)
class _Ack:
    ref: Ref
    error: Any = None
    ignored: bool = False


# -- the behaviour ----------------------------------------------------------------


class GenServer:
    """Base class of generic servers; see the module docstring."""

    default_restart: ClassVar[Restart] = "permanent"
    """The ``restart`` of `child_spec` when none is given."""
    default_shutdown: ClassVar[Shutdown] = 5.0
    """The ``shutdown`` of `child_spec` when none is given (seconds, as OTP's 5 000 ms)."""

    async def init(self, *args: Any) -> Stop | Ignore | None:
        """Set up the state; runs in the new process before `start` returns."""
        return None

    async def handle_call(self, request: Any, from_: From) -> Reply | NoReply | Stop:
        raise NotImplementedError(f"{type(self).__qualname__} got a call it does not handle: {request!r}")

    async def handle_cast(self, request: Any) -> NoReply | Stop | None:
        raise NotImplementedError(f"{type(self).__qualname__} got a cast it does not handle: {request!r}")

    async def handle_info(self, message: Any) -> NoReply | Stop | None:
        """Other messages. The default ignores them, as OTP logs and drops them."""
        return None

    async def terminate(self, reason: Reason) -> None:
        """Clean up; the server exits with ``reason`` afterwards."""

    @property
    def pid(self) -> Pid:
        return _me().pid

    @classmethod
    async def start(cls, *args: Any, name: str | None = None, timeout: float | None = DEFAULT_CALL_TIMEOUT) -> Pid:
        """Start an unlinked server; returns its pid once ``init`` has succeeded."""
        return await start_server(cls, args, name, timeout, link=False)

    @classmethod
    async def start_link(cls, *args: Any, name: str | None = None, timeout: float | None = DEFAULT_CALL_TIMEOUT) -> Pid:
        """Start a server linked to the caller; returns its pid once ``init`` succeeded.

        Raises `StartError` (``init`` raised or returned `Stop`, the name is taken,
        or ``init`` took longer than ``timeout`` seconds) or `Ignored`.
        """
        return await start_server(cls, args, name, timeout, link=True)

    @classmethod
    def child_spec(
        cls,
        *args: Any,
        id: Any = None,  # noqa: A002 - OTP's field name
        name: str | None = None,
        restart: Restart | None = None,
        shutdown: Shutdown | None = None,
    ) -> ChildSpec:
        """A `ChildSpec` that starts this server with ``start_link(*args, name=name)``."""

        async def start() -> Pid:
            return await cls.start_link(*args, name=name)

        return ChildSpec(
            id=cls.__qualname__ if id is None else id,
            start=start,
            restart=restart if restart is not None else cls.default_restart,
            shutdown=shutdown if shutdown is not None else cls.default_shutdown,
            type="worker",
        )


# -- client API -------------------------------------------------------------------


def _resolve(me: Process, server: Server, action: str) -> Pid:
    if isinstance(server, Pid):
        return server
    pid = me.node.whereis(server)
    if pid is None:
        raise NoProc(server, action)
    return pid


async def call(server: Server, request: Any, timeout: float | None = DEFAULT_CALL_TIMEOUT) -> Any:
    """Send ``request`` to ``server`` and wait for its reply.

    Fails at once with `NoProc` if the server is not alive, with `CallExit` if it
    exits before replying (or is the caller itself: reason ``"calling_self"``), and
    with `CallTimeout` after ``timeout`` seconds (None waits forever). A reply that
    arrives after a timeout is discarded.
    """
    me = _me()
    node = me.node
    pid = _resolve(me, server, "call")
    if pid == me.pid:
        # OTP exits with {calling_self, ...}: the call could only ever time out.
        raise CallExit(server, "calling_self")
    # The monitor's ref is the call's tag, as in OTP: the reply and a Down both carry it.
    ref = node.monitor(me, pid)
    node.send(pid, _Call(me.pid, ref, request))
    answer = await me.receive(lambda m: (type(m) is _Reply or type(m) is Down) and m.ref == ref, timeout, default=None)
    if answer is None:
        node.demonitor(me, ref, flush=True)
        raise CallTimeout(server, request, timeout or 0.0)
    if type(answer) is Down:
        if answer.reason == NOPROC:
            raise NoProc(server, "call")
        raise CallExit(server, answer.reason)
    node.demonitor(me, ref, flush=True)
    return answer.value


def cast(server: Server, request: Any) -> None:
    """Send ``request`` to ``server`` without waiting; never fails (as in OTP)."""
    me = _me()
    try:
        pid = _resolve(me, server, "cast")
    except NoProc:
        return
    me.node.send(pid, _Cast(request))


def reply(from_: From, value: Any) -> None:
    """Reply to a call from any process, at any time before the caller gives up.

    A reply to a caller that timed out (and so no longer waits for this ref) is
    dropped, so it never lands in the caller's mailbox as a stray message.
    """
    node = _me().node
    caller = node.lookup(from_.pid)
    if caller is not None:
        if caller.has_monitor(from_.ref):
            caller.put(_Reply(from_.ref, value))
    else:
        node.send(from_.pid, _Reply(from_.ref, value))


async def stop(server: Server, reason: Reason = NORMAL, timeout: float | None = None) -> None:
    """Stop ``server``: it runs ``terminate(reason)`` and exits with ``reason``.

    Returns once it has exited with ``reason``; raises `NoProc` if it is not alive,
    `CallExit` if it exited with another reason (``terminate`` crashed, say), and after
    ``timeout`` seconds kills it and raises `CallTimeout` (OTP's ``proc_lib:stop``).
    """
    me = _me()
    node = me.node
    pid = _resolve(me, server, "stop")
    ref = node.monitor(me, pid)
    node.send(pid, _SystemStop(ref, reason))
    down = await me.receive(lambda m: type(m) is Down and m.ref == ref, timeout, default=None)
    if down is None:
        node.demonitor(me, ref, flush=True)
        target = node.lookup(pid)
        if target is not None:
            node.kill(target)
        raise CallTimeout(server, "stop", timeout or 0.0)
    if down.reason == NOPROC:
        raise NoProc(server, "stop")
    if down.reason != reason:
        raise CallExit(server, down.reason)


# -- the server process ---------------------------------------------------------------


async def start_server(
    cls: type[GenServer],
    args: tuple[Any, ...],
    name: str | None,
    timeout: float | None,
    link: bool,
) -> Pid:
    """Spawn a ``cls`` server and return its pid once ``init`` has acknowledged
    (``proc_lib:start_link``); used by `GenServer.start_link` and by `Supervisor`."""
    me = _me()
    node = me.node
    ref = node.make_ref()
    proc = node.spawn_process(_serve, (cls, args, name, me.pid, ref, link), link=me if link else None)
    proc.label = cls
    monitor = node.monitor(me, proc.pid)
    ack = await me.receive(
        lambda m: (type(m) is _Ack and m.ref == ref) or (type(m) is Down and m.ref == monitor),
        timeout,
        default=None,
    )
    node.demonitor(me, monitor, flush=True)
    if ack is None:
        # OTP kills a server whose init outlives the start timeout; unlink first so
        # that the starter gets the error, not the exit signal.
        node.unlink(me, proc.pid)
        node.kill(proc)
        raise StartError("timeout")
    if type(ack) is Down:
        raise StartError(ack.reason)
    if ack.ignored:
        raise Ignored()
    if ack.error is not None:
        raise StartError(ack.error)
    return proc.pid


async def _serve(
    cls: type[GenServer], args: tuple[Any, ...], name: str | None, starter: Pid, ack: Ref, linked: bool
) -> None:
    me = _me()
    node = me.node
    # OTP's parent: the starter of a linked server; an unlinked server is its own parent,
    # so an Exit from its starter is an ordinary message for handle_info.
    parent = starter if linked else me.pid
    if name is not None:
        try:
            node.register(name, me.pid)
        except NameTaken:
            # OTP 26 (gen:init_it): {error, {already_started, Pid}} for the starter,
            # and the new process exits "normal" (no crash report).
            await _init_failed(me, starter, ack, ("already_started", node.whereis(name)), exit_reason=NORMAL)
    me.callback = "init"
    server = cls()
    try:
        outcome = await server.init(*args)
    except asyncio.CancelledError:
        raise
    except ExitProcess as exit_:
        await _init_failed(me, starter, ack, exit_.reason)
    except Exception as error:  # noqa: BLE001 - handed to the starter, then the process exits with it
        await _init_failed(me, starter, ack, error)
    if isinstance(outcome, Ignore):
        node.unlink(me, starter)
        node.send(starter, _Ack(ack, ignored=True))
        raise ExitProcess(NORMAL)
    if isinstance(outcome, Stop):
        await _init_failed(me, starter, ack, outcome.reason)
    if outcome is not None:
        await _init_failed(me, starter, ack, InvalidReturn("init", outcome, "None, Ignore(), Stop(reason)"))
    node.send(starter, _Ack(ack))
    await _loop(me, server, parent)


async def _init_failed(me: Process, starter: Pid, ack: Ref, reason: Reason, exit_reason: Reason = None) -> NoReturn:
    # OTP 26 semantics: the starter gets the error from start_link, not an exit signal.
    me.node.unlink(me, starter)
    me.node.send(starter, _Ack(ack, error=reason))
    final = reason if exit_reason is None else exit_reason
    raise ExitProcess(final) from (reason if isinstance(reason, BaseException) else None)


@dataclass(frozen=True, slots=True)
class _Stopping:
    """What `_dispatch` returns when a callback (or the parent, or `stop`) ends the
    server: the reason, and the reply still owed to a caller (sent after terminate)."""

    reason: Reason
    reply_to: From | None = None
    reply: Any = _NO_REPLY


async def _loop(me: Process, server: GenServer, parent: Pid) -> None:
    """Run the callbacks until the server stops, and run ``terminate`` as OTP does:
    on a `Stop`, on `stop`, on the parent's exit signal, and when a callback raises
    (then with the exception as the reason, which is also the exit reason)."""
    try:
        stopping = await _dispatch(me, server, parent)
    except asyncio.CancelledError:
        # An exit signal (a supervisor's shutdown, a linked crash): clean up, then go.
        # A kill has already removed the process; nothing runs for it.
        reason = me.pending_exit
        if me.alive and reason is not None and reason != KILLED:
            me.callback = "terminate"
            await server.terminate(reason)
        raise
    except ExitProcess as exit_:
        # exit(reason) from a callback: OTP catches it and terminates with reason.
        await server.terminate(exit_.reason)
        raise
    except Exception as error:
        # A crash in a callback (or a bad return): terminate(reason) runs, then the
        # process exits with the same error, so the crash report keeps the callback
        # and message that failed.
        await server.terminate(error)
        raise
    me.callback = "terminate"
    try:
        await server.terminate(stopping.reason)
    finally:
        # OTP replies to {stop, Reason, Reply, State} only after terminate has run.
        if stopping.reply_to is not None:
            reply(stopping.reply_to, stopping.reply)
    raise ExitProcess(stopping.reason)


async def _dispatch(me: Process, server: GenServer, parent: Pid) -> _Stopping:
    """Handle messages until one of them stops the server; return how it stops."""
    result: Any
    while True:
        message = await me.receive()
        kind = type(message)
        if kind is _Call:
            me.callback = "handle_call"
            from_ = From(message.sender, message.ref)
            result = await server.handle_call(message.request, from_)
            if type(result) is Reply:
                reply(from_, result.value)
            elif type(result) is Stop:
                if result.reply is _NO_REPLY:
                    return _Stopping(result.reason)
                return _Stopping(result.reason, from_, result.reply)
            elif type(result) is not NoReply:
                raise InvalidReturn("handle_call", result, "Reply(value), NoReply(), Stop(reason, reply=...)")
            continue
        if kind is _Cast:
            me.callback = "handle_cast"
            result = await server.handle_cast(message.request)
        elif kind is _SystemStop:
            return _Stopping(message.reason)
        elif kind is Exit and message.pid == parent and me.trap_exit:
            # The parent (supervisor) ordered a stop: terminate and exit with its
            # reason, without handle_info, as OTP's gen_server does.
            return _Stopping(message.reason)
        else:
            me.callback = "handle_info"
            result = await server.handle_info(message)
        if result is None or type(result) is NoReply:
            continue
        if type(result) is Stop:
            return _Stopping(result.reason)
        raise InvalidReturn(me.callback or "handle_info", result, "None, NoReply(), Stop(reason)")
