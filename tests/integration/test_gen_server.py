"""GenServer: start semantics (OTP 26), call/cast/info, replies, stops and terminate."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from testkit import UNIT, Runner

from alight.actors import (
    CallExit,
    CallTimeout,
    Down,
    ExitProcess,
    From,
    GenServer,
    Ignore,
    Ignored,
    InvalidReturn,
    NoProc,
    NoReply,
    Pid,
    Reply,
    StartError,
    Stop,
    Supervisor,
    call,
    cast,
    current_node,
    monitor,
    receive,
    receive_nowait,
    reply,
    self_pid,
    send,
    spawn,
    whereis,
)
from alight.actors import (
    exit as exit_signal,
)
from alight.actors.gen_server import stop

# -- servers used by the tests ---------------------------------------------------------


class Recorder(GenServer):
    """Reports every callback to ``owner`` and does what the request says."""

    async def init(self, owner: Pid, mode: Any = None) -> Stop | Ignore | None:
        self.owner = owner
        self.count = 0
        self.pending: From | None = None
        send(owner, ("init", self.pid))
        if mode == "raise":
            raise RuntimeError("init failed")
        if mode == "stop":
            return Stop("no_thanks")
        if mode == "ignore":
            return Ignore()
        if mode == "garbage":
            return "garbage"  # type: ignore[return-value]
        if mode == "hang":
            await receive(lambda m: m == "never")
        return None

    async def handle_call(self, request: Any, from_: From) -> Reply | NoReply | Stop:
        match request:
            case "get":
                return Reply(self.count)
            case ("add", n):
                self.count += n
                return Reply(self.count)
            case "hold":
                self.pending = from_
                return NoReply()
            case ("forward", helper):
                send(helper, ("reply_for_me", from_))
                return NoReply()
            case "stop_with_reply":
                return Stop("normal", reply="bye")
            case "crash":
                raise RuntimeError("handle_call crashed")
            case "exit":
                raise ExitProcess("custom_exit")
            case "garbage":
                return 42  # type: ignore[return-value]
            case ("kill_me_via", helper):
                send(helper, ("kill", self.pid))
                return NoReply()
            case "call_self":
                return Reply(await call(self.pid, "get"))
        raise AssertionError(request)

    async def handle_cast(self, request: Any) -> NoReply | Stop | None:
        match request:
            case ("add", n):
                self.count += n
            case "release":
                assert self.pending is not None
                reply(self.pending, "late")
                self.pending = None
            case "stop":
                return Stop("shutdown")
            case "garbage":
                return Reply(1)  # type: ignore[return-value]
        return None

    async def handle_info(self, message: Any) -> NoReply | Stop | None:
        send(self.owner, ("info", message))
        return None

    async def terminate(self, reason: Any) -> None:
        send(self.owner, ("terminate", reason))


class BadTerminate(GenServer):
    async def terminate(self, reason: Any) -> None:
        raise ValueError("terminate failed")


def is_terminate(message: Any) -> bool:
    return isinstance(message, tuple) and message[0] == "terminate"


async def no_terminate_within(seconds: float) -> bool:
    return await receive(is_terminate, timeout=seconds, default=None) is None


async def wait_down(pid: Pid) -> Any:
    ref = monitor(pid)
    down: Down = await receive(lambda m: type(m) is Down and m.ref == ref)
    return down.reason


# -- start ------------------------------------------------------------------------------


def test_start_link_returns_after_init(run: Runner) -> None:
    async def main() -> None:
        pid = await Recorder.start_link(self_pid())
        # init's message was sent before the acknowledgement, so it is already here.
        assert receive_nowait(lambda m: m[0] == "init") == ("init", pid)
        assert await call(pid, "get") == 0

    run(main)


def test_start_returns_an_unlinked_server(run: Runner) -> None:
    async def main() -> None:
        pid = await Recorder.start(self_pid())
        assert receive_nowait(lambda m: m[0] == "init") == ("init", pid)
        await stop(pid)

    run(main)


def test_init_raising_is_a_start_error_and_does_not_kill_the_starter(run: Runner) -> None:
    async def main() -> None:
        with pytest.raises(StartError) as info:
            await Recorder.start_link(self_pid(), "raise")
        assert isinstance(info.value.reason, RuntimeError)
        assert str(info.value.reason) == "init failed"
        _, pid = receive_nowait(lambda m: m[0] == "init")
        # The server may have exited before the starter ran again ("noproc").
        reason = await wait_down(pid)
        assert reason == "noproc" or isinstance(reason, RuntimeError)
        # An exit signal from the link would be delivered with the Down; we would be
        # cancelled at this await.
        await asyncio.sleep(0)
        assert receive_nowait(default=None) is None

    run(main)


def test_init_stop_is_a_start_error(run: Runner) -> None:
    async def main() -> None:
        with pytest.raises(StartError) as info:
            await Recorder.start_link(self_pid(), "stop")
        assert info.value.reason == "no_thanks"
        _, pid = receive_nowait(lambda m: m[0] == "init")
        assert await wait_down(pid) in ("no_thanks", "noproc")

    run(main)


def test_init_ignore_is_ignored(run: Runner) -> None:
    async def main() -> None:
        with pytest.raises(Ignored):
            await Recorder.start_link(self_pid(), "ignore")
        _, pid = receive_nowait(lambda m: m[0] == "init")
        assert await wait_down(pid) in ("normal", "noproc")

    run(main)


def test_init_bad_return_is_a_start_error_listing_the_shapes(run: Runner) -> None:
    async def main() -> None:
        with pytest.raises(StartError) as info:
            await Recorder.start_link(self_pid(), "garbage")
        assert isinstance(info.value.reason, InvalidReturn)
        assert "None, Ignore(), Stop(reason)" in str(info.value.reason)

    run(main)


def test_init_that_outlives_the_start_timeout_is_killed(run: Runner) -> None:
    async def main() -> None:
        with pytest.raises(StartError) as info:
            await Recorder.start_link(self_pid(), "hang", timeout=0.05 * UNIT)
        assert info.value.reason == "timeout"
        _, pid = receive_nowait(lambda m: m[0] == "init")
        assert await wait_down(pid) in ("killed", "noproc")

    run(main)


def test_name_registration_and_already_started(run: Runner) -> None:
    async def main() -> None:
        pid = await Recorder.start_link(self_pid(), name="recorder")
        assert whereis("recorder") == pid
        assert await call("recorder", ("add", 2)) == 2
        crashes = current_node().crashes
        with pytest.raises(StartError) as info:
            await Recorder.start_link(self_pid(), name="recorder")
        assert info.value.reason == ("already_started", pid)
        # The loser exits "normal" (OTP 26): no crash report, and init never ran.
        assert current_node().crashes == crashes
        assert receive_nowait(lambda m: m[0] == "init") == ("init", pid)
        assert receive_nowait(lambda m: m[0] == "init", default=None) is None
        await stop("recorder")
        assert whereis("recorder") is None

    run(main)


# -- call, cast, info -----------------------------------------------------------------------


def test_call_cast_and_handle_info(run: Runner) -> None:
    async def main() -> None:
        pid = await Recorder.start_link(self_pid())
        cast(pid, ("add", 5))
        assert await call(pid, ("add", 1)) == 6
        send(pid, "hello")
        assert await receive(lambda m: m[0] == "info") == ("info", "hello")
        cast("nobody", "ignored")  # a cast never fails, as in OTP

    run(main)


def test_call_timeout_names_the_target_and_drops_the_late_reply(run: Runner) -> None:
    async def main() -> None:
        pid = await Recorder.start_link(self_pid(), name="slow")
        receive_nowait(lambda m: m[0] == "init")
        with pytest.raises(CallTimeout) as info:
            await call("slow", "hold", timeout=0.05 * UNIT)
        assert info.value.target == "slow"
        assert "'slow'" in str(info.value)
        assert "hold" in str(info.value)
        cast(pid, "release")  # the server replies now, too late
        assert await call(pid, "get") == 0  # the cast has been handled
        assert receive_nowait(default=None) is None

    run(main)


def test_call_to_a_dead_pid_fails_at_once(run: Runner) -> None:
    async def main() -> None:
        async def brief() -> None:
            return None

        pid = spawn(brief)
        await wait_down(pid)
        with pytest.raises(NoProc):
            await call(pid, "get", timeout=100 * UNIT)
        with pytest.raises(NoProc):
            await call("unregistered", "get", timeout=100 * UNIT)

    run(main)


def test_crash_in_handle_call_gives_call_exit_and_runs_terminate(run: Runner) -> None:
    async def main() -> None:
        pid = await Recorder.start(self_pid())
        with pytest.raises(CallExit) as info:
            await call(pid, "crash", timeout=100 * UNIT)
        assert isinstance(info.value.reason, RuntimeError)
        assert info.value.target == pid
        _, reason = await receive(is_terminate)
        assert reason is info.value.reason

    run(main)


def test_server_killed_during_a_call_gives_call_exit(run: Runner) -> None:
    async def main() -> None:
        async def killer() -> None:
            _, target = await receive()
            exit_signal(target, "kill")

        pid = await Recorder.start(self_pid())
        with pytest.raises(CallExit) as info:
            await call(pid, ("kill_me_via", spawn(killer)), timeout=100 * UNIT)
        assert info.value.reason == "killed"

    run(main)


def test_server_exiting_during_a_call_gives_call_exit_with_its_reason(run: Runner) -> None:
    async def main() -> None:
        pid = await Recorder.start(self_pid())
        with pytest.raises(CallExit) as info:
            await call(pid, "exit", timeout=100 * UNIT)
        assert info.value.reason == "custom_exit"
        assert await receive(is_terminate) == ("terminate", "custom_exit")

    run(main)


def test_calling_self_fails_at_once(run: Runner) -> None:
    async def main() -> None:
        pid = await Recorder.start(self_pid())
        with pytest.raises(CallExit) as info:
            await call(pid, "call_self", timeout=100 * UNIT)
        assert isinstance(info.value.reason, CallExit)
        assert info.value.reason.reason == "calling_self"

    run(main)


def test_deferred_reply_from_another_process(run: Runner) -> None:
    async def main() -> None:
        async def helper() -> None:
            _, from_ = await receive()
            reply(from_, "from the helper")

        pid = await Recorder.start_link(self_pid())
        assert await call(pid, ("forward", spawn(helper))) == "from the helper"
        assert await call(pid, "get") == 0  # the server went on serving

    run(main)


# -- stopping and terminate -----------------------------------------------------------------


def test_stop_with_reply_replies_after_terminate(run: Runner) -> None:
    async def main() -> None:
        pid = await Recorder.start(self_pid())
        ref = monitor(pid)
        assert await call(pid, "stop_with_reply") == "bye"
        # terminate had run before the reply was sent: its message is already here.
        assert receive_nowait(is_terminate) == ("terminate", "normal")
        down = await receive(lambda m: type(m) is Down and m.ref == ref)
        assert down.reason == "normal"

    run(main)


def test_stop_from_a_cast(run: Runner) -> None:
    async def main() -> None:
        pid = await Recorder.start(self_pid())
        cast(pid, "stop")
        assert await wait_down(pid) == "shutdown"
        assert receive_nowait(is_terminate) == ("terminate", "shutdown")

    run(main)


def test_terminate_runs_on_stop(run: Runner) -> None:
    async def main() -> None:
        pid = await Recorder.start(self_pid())  # unlinked: "shutdown" would stop us too
        await stop(pid, "shutdown")
        assert receive_nowait(is_terminate) == ("terminate", "shutdown")
        with pytest.raises(NoProc):
            await stop(pid)

    run(main)


def test_stop_raises_when_the_server_exits_with_another_reason(run: Runner) -> None:
    async def main() -> None:
        pid = await BadTerminate.start()
        with pytest.raises(CallExit) as info:
            await stop(pid)
        assert isinstance(info.value.reason, ValueError)

    run(main)


def test_terminate_runs_on_supervisor_shutdown(run: Runner) -> None:
    async def main() -> None:
        sup = await Supervisor.start_link([Recorder.child_spec(self_pid(), id="rec", shutdown=1 * UNIT)])
        await Supervisor.stop(sup)
        assert receive_nowait(is_terminate) == ("terminate", "shutdown")

    run(main)


def test_terminate_runs_on_an_exit_signal_without_trap_exit(run: Runner) -> None:
    async def main() -> None:
        pid = await Recorder.start(self_pid())
        exit_signal(pid, "shutdown")
        assert await wait_down(pid) == "shutdown"
        assert receive_nowait(is_terminate) == ("terminate", "shutdown")

    run(main)


def test_terminate_does_not_run_on_kill(run: Runner) -> None:
    async def main() -> None:
        pid = await Recorder.start(self_pid())
        ref = monitor(pid)
        exit_signal(pid, "kill")
        down = await receive(lambda m: type(m) is Down and m.ref == ref)
        assert down.reason == "killed"
        assert await no_terminate_within(0.05 * UNIT)

    run(main)


def test_bad_return_from_handle_cast_crashes_the_server_listing_the_shapes(run: Runner) -> None:
    async def main() -> None:
        pid = await Recorder.start(self_pid())
        ref = monitor(pid)
        cast(pid, "garbage")
        down = await receive(lambda m: type(m) is Down and m.ref == ref)
        assert isinstance(down.reason, InvalidReturn)
        assert down.reason.callback == "handle_cast"
        assert "None, NoReply(), Stop(reason)" in str(down.reason)
        _, reason = receive_nowait(is_terminate)
        assert reason is down.reason

    run(main)


def test_bad_return_from_handle_call_gives_the_caller_call_exit(run: Runner) -> None:
    async def main() -> None:
        pid = await Recorder.start(self_pid())
        with pytest.raises(CallExit) as info:
            await call(pid, "garbage")
        reason = info.value.reason
        assert isinstance(reason, InvalidReturn)
        assert "Reply(value), NoReply(), Stop(reason, reply=...)" in str(reason)
        assert "42" in str(reason)

    run(main)
