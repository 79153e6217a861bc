"""Exceptions of `alight.actors`.

Every exception the runtime raises derives from `ActorError`::

    ActorError
    ├── NotInProcess        an API that needs the current process was called outside one
    ├── NoProc              the target process does not exist (call, link, stop, ...)
    ├── ReceiveTimeout      receive() waited `timeout` seconds without a match
    ├── CallTimeout         a GenServer call got no reply in time; names the target
    ├── CallExit            the server exited while a call was pending; carries the reason
    ├── RegistryError       a name registry operation was refused
    │   ├── NameTaken       register() of a name that is already registered
    │   └── UnknownName     send() to a name that nobody has registered
    ├── StartError          a process failed to start; carries the reason
    │   └── Ignored         a GenServer's init returned `Ignore()`
    ├── InvalidChildSpec    a child spec is malformed; names the field
    ├── SupervisorError     a supervisor operation was refused (unknown child, running, ...)
    └── InvalidReturn       a callback returned a value outside its accepted shapes

Exit *reasons* (``"normal"``, ``"shutdown"``, ``"killed"``, a crash) are not exceptions
of this tree: they are values carried by `Down` and `Exit` messages. `ExitProcess` is
the one exception a process raises on purpose to exit with a reason (Erlang's
``exit/1``); the runtime turns it into that reason, never into a crash report.
"""

from __future__ import annotations

from typing import Any

from ..errors import AlightError


class ActorError(AlightError):
    """Root of every exception raised by `alight.actors`."""


class NotInProcess(ActorError):  # noqa: N818 - leaves name what happened (STYLE 4)
    """The function needs the current process but was called from plain asyncio code.

    Run the code inside a process (`Node.run`, `spawn`) or call the `Node` method of
    the same name, which needs no current process.
    """


class NoProc(ActorError):  # noqa: N818 - leaves name what happened (STYLE 4)
    """The target process is not alive (Erlang's ``noproc``)."""

    def __init__(self, target: Any, action: str = "") -> None:
        self.target = target
        self.action = action
        what = f" ({action})" if action else ""
        super().__init__(f"no process {target!r}{what}")


class ReceiveTimeout(ActorError):  # noqa: N818 - leaves name what happened (STYLE 4)
    """`receive` waited its whole timeout and no message matched."""


class CallTimeout(ActorError):  # noqa: N818 - leaves name what happened (STYLE 4)
    """A `GenServer.call` got no reply within its timeout.

    The server may still handle the request later; its late reply is discarded.
    """

    def __init__(self, target: Any, request: Any, timeout: float) -> None:
        self.target = target
        self.request = request
        self.timeout = timeout
        super().__init__(f"call to {target!r} timed out after {timeout} s (request {request!r})")


class CallExit(ActorError):  # noqa: N818 - leaves name what happened (STYLE 4)
    """The server exited before replying to a call; ``reason`` is its exit reason."""

    def __init__(self, target: Any, reason: Any) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"{target!r} exited during a call: {reason!r}")


class RegistryError(ActorError):
    """A name registry operation was refused."""


class NameTaken(RegistryError):  # noqa: N818 - leaves name what happened (STYLE 4)
    """The name is already registered, or the process already has a name."""


class UnknownName(RegistryError):  # noqa: N818 - leaves name what happened (STYLE 4)
    """No process is registered under the name (Erlang raises ``badarg``)."""


class StartError(ActorError):
    """A process failed to start: its init raised or asked to stop. ``reason`` says why."""

    def __init__(self, reason: Any) -> None:
        self.reason = reason
        super().__init__(f"start failed: {reason!r}")


class Ignored(StartError):  # noqa: N818 - leaves name what happened (STYLE 4)
    """The GenServer's ``init`` returned `Ignore()`: nothing was started."""

    def __init__(self) -> None:
        super().__init__("ignore")


class InvalidChildSpec(ActorError):  # noqa: N818 - leaves name what happened (STYLE 4)
    """A child spec is malformed; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"invalid child spec field {field!r}: {message}")


class SupervisorError(ActorError):
    """A supervisor refused an operation; ``reason`` is ``"not_found"``, ``"running"``, ..."""

    def __init__(self, reason: str, child_id: Any = None) -> None:
        self.reason = reason
        self.child_id = child_id
        suffix = "" if child_id is None else f" (child {child_id!r})"
        super().__init__(f"{reason}{suffix}")


class InvalidReturn(ActorError):  # noqa: N818 - leaves name what happened (STYLE 4)
    """A callback returned a value outside the shapes it may return; lists them."""

    def __init__(self, callback: str, value: Any, accepted: str) -> None:
        self.callback = callback
        self.value = value
        super().__init__(f"{callback} returned {value!r}; expected one of: {accepted}")


class ExitProcess(Exception):  # noqa: N818 - named after Erlang's exit/1, not an error
    """Raise to end the current process with ``reason`` (Erlang's ``exit(Reason)``).

    ``raise ExitProcess("normal")`` ends it normally; any other reason is abnormal and
    propagates to linked processes. Any other exception escaping a process is a crash
    whose reason is the exception itself.
    """

    def __init__(self, reason: Any) -> None:
        self.reason = reason
        super().__init__(reason)
