"""The Channel behaviour: one process per joined topic per connection.

Subclass `Channel` and route topics to it from a `Socket`::

    class RoomChannel(Channel):
        intercepts = ("user_left",)

        async def join(self, topic, payload):
            if topic == "room:forbidden":
                return Error({"reason": "unauthorized"})
            return Ok({"joined": topic.split(":", 1)[1]})

        async def handle_in(self, event, payload):
            if event == "shout":
                self.broadcast("shout", payload)
                return NoReply()
            return Ok(payload)

Callbacks return what should happen and the runtime does it (Phoenix's tuples, typed):

============== ===========================================================
callback        may return
============== ===========================================================
``join``        `Ok(payload=None)`, `Error(payload)`
``handle_in``   `Ok(payload)`, `Error(payload)`, `Reply(status, payload)`,
                `NoReply()`, `Stop(reason, reply=None)`
``handle_out``  None / `NoReply()`, `Stop(reason)`; the default pushes the event
``handle_info`` None / `NoReply()`, `Stop(reason)`
============== ===========================================================

Anything else raises `InvalidChannelReturn` listing these shapes; in ``join`` the client then
gets ``{"reason": "join crashed"}``, elsewhere the channel crashes and the client gets
``phx_error`` and rejoins. A `Stop` with ``"normal"``, ``"shutdown"`` or
``("shutdown", term)`` closes the channel (``phx_close``, no rejoin); any other
reason is a crash (``phx_error``). ``terminate(reason)`` runs on every orderly stop,
not on crashes, as in Phoenix: ``("shutdown", "left")`` (client leave), the `Stop`
reason, ``("shutdown", "closed")`` (connection closed), the socket's exit reason
otherwise (``("shutdown", "disconnected")``), and exit signals such as a supervisor
shutdown or ``("shutdown", "duplicate_join")``.

While a message is handled, ``self.ref`` is its ref and `socket_ref` captures it, so
that any process may `reply` later.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..actors import Pid, self_pid, send
from ..actors.messages import NORMAL, Reason
from .errors import NotJoined
from .message import Broadcast, Message, Payload

if TYPE_CHECKING:
    from ..transports.base import Conn
    from .endpoint import Endpoint
    from .serializer import Serializer


@dataclass(frozen=True, slots=True)
class Ok:
    """Join accepted / reply with status ``ok`` (payload defaults to ``{}``)."""

    payload: Payload = None


@dataclass(frozen=True, slots=True)
class Error:
    """Join refused / reply with status ``error``."""

    payload: Payload = None


@dataclass(frozen=True, slots=True)
class Reply:
    """Reply with any status string (the JS client's ``receive(status, ...)``)."""

    status: str
    payload: Payload = None


@dataclass(frozen=True, slots=True)
class NoReply:
    """Handled; nothing to send back now."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop the channel with ``reason`` after sending ``reply`` if given."""

    reason: Reason = NORMAL
    reply: Ok | Error | Reply | None = None


ReplyResult = Ok | Error | Reply


@dataclass(frozen=True, slots=True)
class SocketRef:
    """A captured message ref: `reply` answers that message later, from any process."""

    channel: Pid
    topic: str
    ref: Any
    join_ref: Any


@dataclass(frozen=True, slots=True)
class ReplyRequest:
    """Sent to a channel by `reply`; the channel writes the reply frame."""

    socket_ref: SocketRef
    reply: ReplyResult


def reply(socket_ref: SocketRef, result: ReplyResult) -> None:
    """Answer the message captured by ``socket_ref`` with ``result`` (`Ok`, `Error`
    or `Reply`). Works from any process; a reply for a channel that has gone is
    dropped."""
    if not isinstance(result, Ok | Error | Reply):
        raise TypeError(f"reply takes Ok(...), Error(...) or Reply(status, ...), not {result!r}")
    send(socket_ref.channel, ReplyRequest(socket_ref, result))


@dataclass(slots=True)
class ChannelContext:
    """What the runtime gives a channel (Phoenix's socket struct, per channel)."""

    endpoint: Endpoint
    conn: Conn
    serializer: Serializer
    socket_pid: Pid
    socket_id: str | None
    transport: str
    topic: str
    join_ref: Any
    assigns: dict[str, Any] = field(default_factory=dict)


class Channel:
    """Base class of channels; see the module docstring."""

    intercepts: ClassVar[Iterable[str]] = ()
    """Events that go through `handle_out` in each channel instead of the fastlane; read
    once, when the class is defined (Phoenix's ``intercept`` is a compile-time list too)."""

    _intercepting: ClassVar[frozenset[str]] = frozenset()
    """`intercepts` as a set, made once per class (every channel of it shares it)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._intercepting = frozenset(cls.intercepts)

    _context: ChannelContext
    joined: bool = False
    ref: Any = None
    """The ref of the message being handled (None outside `handle_in`)."""

    # -- callbacks ------------------------------------------------------------------

    async def join(self, topic: str, payload: Payload) -> Ok | Error:
        return Error({"reason": "unauthorized"})

    async def handle_in(self, event: str, payload: Payload) -> Ok | Error | Reply | NoReply | Stop:
        raise NotImplementedError(f"{type(self).__qualname__} does not handle event {event!r}")

    async def handle_out(self, event: str, payload: Payload) -> NoReply | Stop | None:
        """An intercepted broadcast; the default pushes it unchanged."""
        self.push(event, payload)
        return None

    async def handle_info(self, message: Any) -> NoReply | Stop | None:
        """Any other message; the default ignores it."""
        return None

    async def terminate(self, reason: Reason) -> None:
        """Orderly stop: leave, Stop, socket closed, shutdown."""

    # -- the socket struct ----------------------------------------------------------

    @property
    def topic(self) -> str:
        return self._context.topic

    @property
    def join_ref(self) -> Any:
        return self._context.join_ref

    @property
    def assigns(self) -> dict[str, Any]:
        """This channel's copy of the socket's assigns (changes stay in the channel)."""
        return self._context.assigns

    @property
    def endpoint(self) -> Endpoint:
        return self._context.endpoint

    @property
    def transport(self) -> str:
        return self._context.transport

    @property
    def socket_id(self) -> str | None:
        return self._context.socket_id

    @property
    def socket_pid(self) -> Pid:
        return self._context.socket_pid

    # -- sending ----------------------------------------------------------------------

    def _check_joined(self, action: str) -> None:
        if not self.joined:
            raise NotJoined(f"{action} on {self._context.topic!r} before the join has completed")

    def push(self, event: str, payload: Payload) -> None:
        """Send ``event`` to this channel's client only."""
        self._check_joined("push")
        context = self._context
        context.conn.write(
            context.serializer.encode_push(Message(context.topic, event, payload, None, context.join_ref))
        )

    def broadcast(self, event: str, payload: Payload) -> None:
        """Send ``event`` to every subscriber of the topic, on every node, this one included."""
        self._check_joined("broadcast")
        self._context.endpoint.pubsub.broadcast(self.topic, Broadcast(self.topic, event, payload))

    def broadcast_from(self, event: str, payload: Payload) -> None:
        """Like `broadcast`, except to this channel's own client."""
        self._check_joined("broadcast_from")
        self._context.endpoint.pubsub.broadcast(self.topic, Broadcast(self.topic, event, payload), self_pid())

    def socket_ref(self) -> SocketRef:
        """Capture the message being handled so that `reply` can answer it later."""
        self._check_joined("socket_ref")
        if self.ref is None:
            raise NotJoined("socket_ref is only available while handling a message that has a ref")
        return SocketRef(self_pid(), self.topic, self.ref, self.join_ref)
