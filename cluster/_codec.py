"""The node-to-node frame codec (sans-I/O): typed messages in, bytes out, and back.

One ZeroMQ frame carries a *batch* of messages, in order (batching is about ten times
faster than a frame per message)::

    frame = version byte (1) + pickle(list of (tag, fields) tuples)

Why pickle is acceptable here: a frame reaches `decode_batch` only from a peer that
completed the CurveZMQ handshake with the cluster key (see `_auth`), and a node with the
cluster secret is trusted completely (see `_keys`). Nothing from a client (browser,
WebSocket, long-poll) and nothing from an unauthenticated peer is ever given to this
module. Data travels with plain ``pickle`` (twice as fast as cloudpickle), slotted
dataclasses as ``cls(*fields)`` (`_SlottedDataclasses`); only the function of a `Spawn`
uses cloudpickle, through `dump_function` and `load_function`.

Each message class is a frozen dataclass with a fixed wire tag; the wire form of a
message is ``(tag, (field, ...))``, so that the class itself is never pickled and a
peer can only ever produce the classes listed in `MESSAGE_TYPES`. `decode_batch` raises
only `ClusterFrameError`, whatever the bytes; `encode_batch` raises only `BatchEncodeError`.

Limits: a frame is at most ``max_size`` bytes (`DEFAULT_MAX_FRAME`, 64 MiB); the same
bound should be set as the sockets' ``ZMQ_MAXMSGSIZE`` so that libzmq drops a bigger
message before it is buffered (`_auth` does).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass, fields, is_dataclass
from operator import attrgetter
from typing import Any, NamedTuple, TypeAlias

import cloudpickle

from ..actors import Pid, Ref
from .errors import BatchEncodeError, ClusterFrameError

__all__ = [
    "DEFAULT_MAX_FRAME",
    "MESSAGE_TYPES",
    "VERSION",
    "ClusterMessage",
    "Demonitor",
    "Down",
    "Exit",
    "Forward",
    "Heartbeat",
    "Hello",
    "Link",
    "Member",
    "Monitor",
    "PubSubForward",
    "Send",
    "Spawn",
    "SpawnReply",
    "Unlink",
    "decode_batch",
    "dump_function",
    "encode_batch",
    "load_function",
]

VERSION = 1
"""The first byte of every frame. A frame of another version raises `ClusterFrameError`."""

DEFAULT_MAX_FRAME = 64 * 1024 * 1024
"""The default bound on a frame's size in bytes, for encoding and decoding."""

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_VERSION_BYTE = bytes([VERSION])


class Member(NamedTuple):
    """A node as `Hello` lists it: its ``name``, its ``creation`` (incarnation) and
    its cluster ``address`` (``tcp://host:port``)."""

    name: str
    creation: int
    address: str


@dataclass(frozen=True, slots=True)
class Hello:
    """First message on a link, and membership gossip: who I am and whom I know.

    ``creation`` tells a restarted node from its previous life; ``members`` are the
    other nodes the sender knows (full mesh: the receiver connects to the ones it
    does not)."""

    node: str
    creation: int
    address: str
    members: tuple[Member, ...] = ()


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Liveness: a node that receives no frame from a peer for the failure-detection
    period declares it down. ``seq`` increases per heartbeat (for diagnostics).

    It also acknowledges: ``received`` messages have arrived so far on the receiver's
    link from the peer's DEALER session ``session`` (so the peer can count what a link
    that closes may not have delivered: `LinkStatistics.unconfirmed_at_close`)."""

    seq: int = 0
    session: str = ""
    received: int = 0


@dataclass(frozen=True, slots=True)
class Send:
    """Deliver ``message`` to ``dest``: a pid of the receiving node, or a name
    registered there (Erlang's ``{Name, Node} ! Msg``). Unknown targets drop it, as
    Erlang does."""

    dest: Pid | str
    message: Any


@dataclass(frozen=True, slots=True)
class Link:
    """``from_pid`` (sender's node) links to ``to_pid`` (receiver's node)."""

    from_pid: Pid
    to_pid: Pid


@dataclass(frozen=True, slots=True)
class Unlink:
    """``from_pid`` removes its link to ``to_pid``."""

    from_pid: Pid
    to_pid: Pid


@dataclass(frozen=True, slots=True)
class Exit:
    """An exit signal from ``from_pid`` to ``to_pid`` with ``reason`` (a link firing,
    or ``exit(pid, reason)``)."""

    from_pid: Pid
    to_pid: Pid
    reason: Any


@dataclass(frozen=True, slots=True)
class Monitor:
    """``watcher`` (sender's node) monitors ``target`` (a pid or registered name on the
    receiver's node) under ``ref``. If the target does not exist, the receiver answers
    at once with `Down` and reason ``"noproc"``."""

    ref: Ref
    watcher: Pid
    target: Pid | str


@dataclass(frozen=True, slots=True)
class Demonitor:
    """Cancel the monitor ``ref`` that ``watcher`` set on ``target``."""

    ref: Ref
    watcher: Pid
    target: Pid | str


@dataclass(frozen=True, slots=True)
class Down:
    """The monitored ``target`` exited with ``reason``; deliver a ``Down`` message for
    ``ref`` to ``watcher`` (receiver's node)."""

    ref: Ref
    watcher: Pid
    target: Pid | str
    reason: Any


@dataclass(frozen=True, slots=True)
class Spawn:
    """Spawn ``function(*args)`` on the receiving node for ``from_pid``; answer with a
    `SpawnReply` carrying ``ref``. ``function`` is `dump_function` output (cloudpickle);
    ``args`` travel with pickle. ``link``/``monitor`` make it a spawn_link/spawn_monitor
    (for ``monitor``, ``ref`` is also the monitor's reference)."""

    ref: Ref
    from_pid: Pid
    function: bytes
    args: tuple[Any, ...] = ()
    link: bool = False
    monitor: bool = False


@dataclass(frozen=True, slots=True)
class SpawnReply:
    """The answer to `Spawn` ``ref``: the new ``pid``, or ``None`` and ``error`` (why
    the function could not be loaded or started)."""

    ref: Ref
    pid: Pid | None
    error: Any = None


@dataclass(frozen=True, slots=True)
class PubSubForward:
    """A broadcast crossing to this node once, to be dispatched to local subscribers of
    ``topic`` (except ``from_pid``) in the PubSub named ``pubsub``, as phoenix_pubsub's
    ``forward_to_local``."""

    topic: str
    message: Any
    from_pid: Pid | None = None
    pubsub: str = ""


@dataclass(frozen=True, slots=True)
class Forward:
    """Hand ``message`` to the local service named ``service`` (presence replication:
    tracker heartbeats and deltas go to the tracker of the same name)."""

    service: str
    message: Any


ClusterMessage: TypeAlias = (
    Hello
    | Heartbeat
    | Send
    | Link
    | Unlink
    | Exit
    | Monitor
    | Demonitor
    | Down
    | Spawn
    | SpawnReply
    | PubSubForward
    | Forward
)
"""Any message of the node-to-node protocol."""

# The wire tag of a class is its index here: append new types, never reorder.
MESSAGE_TYPES: tuple[type[ClusterMessage], ...] = (
    Hello,
    Heartbeat,
    Send,
    Link,
    Unlink,
    Exit,
    Monitor,
    Demonitor,
    Down,
    Spawn,
    SpawnReply,
    PubSubForward,
    Forward,
)
"""The message classes, in wire-tag order."""

_TAGS: dict[type[Any], int] = {cls: tag for tag, cls in enumerate(MESSAGE_TYPES)}
_FIELDS: tuple[tuple[str, ...], ...] = tuple(tuple(f.name for f in fields(cls)) for cls in MESSAGE_TYPES)
_ARITY: tuple[tuple[int, int], ...] = tuple(
    (sum(1 for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING), len(fields(cls)))
    for cls in MESSAGE_TYPES
)


def _getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if len(names) > 1:
        return attrgetter(*names)
    name = names[0]
    return lambda message: (getattr(message, name),)


_GETTERS = tuple(_getter(names) for names in _FIELDS)


def _wire(message: Any) -> tuple[int, tuple[Any, ...]]:
    tag = _TAGS.get(type(message))
    if tag is None:
        raise TypeError(f"not a cluster message: {type(message).__name__}")
    values = _GETTERS[tag](message)
    if tag == 0:  # Hello: members as plain tuples, so no class is pickled
        values = (*values[:3], tuple(tuple(m) for m in values[3]))
    return tag, values


class _SlottedDataclasses(dict[type, Any]):
    """A pickler ``dispatch_table`` that pickles a slotted dataclass (the payloads: a
    channel ``Broadcast``, presence deltas) as ``cls(*fields)`` instead of through the
    ``__getstate__``/``__setstate__`` pair that ``dataclass(slots=True)`` generates,
    which calls ``dataclasses.fields`` for every object: 2-3x faster both ways, and the
    frames are smaller. Only classes whose whole state is their ``__init__`` fields
    qualify (every field ``init``, no ``__post_init__``, the generated ``__getstate__``);
    any other object pickles as usual. The reducer of each type is computed once."""

    def __missing__(self, cls: type) -> Any:
        reducer = _slotted_reducer(cls)
        if reducer is None:
            raise KeyError(cls)
        self[cls] = reducer
        return reducer


def _slotted_reducer(cls: type) -> Callable[[Any], tuple[Any, ...]] | None:
    if not is_dataclass(cls) or "__slots__" not in cls.__dict__ or hasattr(cls, "__post_init__"):
        return None
    getstate = cls.__dict__.get("__getstate__")
    if getattr(getstate, "__name__", "") != "_dataclass_getstate":
        return None
    names = [f.name for f in fields(cls)]
    if not names or any(not f.init for f in fields(cls)):
        return None
    get = attrgetter(*names)
    if len(names) == 1:
        return lambda obj: (cls, (get(obj),))
    return lambda obj: (cls, get(obj))


_DISPATCH = _SlottedDataclasses()


def _dumps(wire: object) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, _PROTOCOL)
    pickler.dispatch_table = _DISPATCH
    pickler.dump(wire)
    return buffer.getvalue()


def encode_batch(messages: Iterable[ClusterMessage], *, max_size: int = DEFAULT_MAX_FRAME) -> bytes:
    """Encode ``messages``, in order, as one frame of at most ``max_size`` bytes.

    Raises `BatchEncodeError`: with ``index`` set when message ``index`` is not a cluster
    message or cannot be pickled (drop or fail that one and encode the rest), with
    ``index=None`` when the frame would exceed ``max_size`` (split the batch)."""
    wire = []
    for index, message in enumerate(messages):
        try:
            wire.append(_wire(message))
        except TypeError as exc:
            raise BatchEncodeError(str(exc), index) from exc
    try:
        body = _dumps(wire)
    except Exception as exc:  # any pickling failure becomes BatchEncodeError
        culprit = _culprit(wire)
        raise BatchEncodeError(f"cannot pickle message {culprit}: {exc!r}", culprit) from exc
    if len(body) + 1 > max_size:
        alone = 0 if len(wire) == 1 else None
        raise BatchEncodeError(f"frame of {len(body) + 1} bytes exceeds the bound of {max_size}", alone)
    return _VERSION_BYTE + body


def _culprit(wire: list[tuple[int, tuple[Any, ...]]]) -> int | None:
    # Only on the failure path: find which message failed to pickle.
    for index, item in enumerate(wire):
        try:
            _dumps(item)
        except Exception:  # noqa: BLE001 - probing for the failing message
            return index
    return None


def decode_batch(frame: bytes, *, max_size: int = DEFAULT_MAX_FRAME) -> list[ClusterMessage]:
    """Decode a frame from `encode_batch` into its messages, in order.

    Call it only on frames from an authenticated peer (it unpickles). Raises
    `ClusterFrameError` and nothing else: empty frame, unknown version, over ``max_size``,
    bytes that do not unpickle, or content that is not a list of known messages.
    Each message's arity is checked, not its field types: the peer is trusted."""
    if len(frame) > max_size:
        raise ClusterFrameError(f"frame of {len(frame)} bytes exceeds the bound of {max_size}")
    if not frame:
        raise ClusterFrameError("empty frame")
    if frame[0] != VERSION:
        raise ClusterFrameError(f"unknown frame version {frame[0]} (this node speaks {VERSION})")
    try:
        wire = pickle.loads(memoryview(frame)[1:])
    except Exception as exc:  # boundary: any unpickling failure is a ClusterFrameError
        raise ClusterFrameError(f"cannot unpickle frame: {exc!r}") from exc
    if type(wire) is not list:
        raise ClusterFrameError(f"frame holds {type(wire).__name__}, not a list of messages")
    return [_message(item) for item in wire]


def _message(item: Any) -> ClusterMessage:
    try:
        tag, values = item
        if type(tag) is not int or not 0 <= tag < len(MESSAGE_TYPES):
            raise ValueError(f"unknown message tag {tag!r}")
        low, high = _ARITY[tag]
        if type(values) is not tuple or not low <= len(values) <= high:
            raise ValueError(f"wrong fields for {MESSAGE_TYPES[tag].__name__}")
        if tag == 0 and len(values) == 4:
            values = (*values[:3], tuple(Member(*m) for m in values[3]))
        return MESSAGE_TYPES[tag](*values)
    except Exception as exc:  # boundary: malformed content is a ClusterFrameError
        raise ClusterFrameError(f"malformed message in frame: {exc!r}") from exc


def dump_function(function: Callable[..., Any]) -> bytes:
    """Serialize ``function`` for `Spawn` with cloudpickle (lambdas, closures and
    functions of ``__main__`` travel by value). Raises `BatchEncodeError` if it cannot."""
    if not callable(function):
        raise BatchEncodeError(f"not callable: {function!r}", 0)
    try:
        return cloudpickle.dumps(function, _PROTOCOL)  # type: ignore[no-any-return]
    except Exception as exc:  # any pickling failure becomes BatchEncodeError
        raise BatchEncodeError(f"cannot serialize function {function!r}: {exc!r}", 0) from exc


def load_function(data: bytes) -> Callable[..., Any]:
    """Load a function serialized by `dump_function` (from an authenticated peer only).
    Raises `ClusterFrameError` if it does not load or is not callable; the spawning node
    answers the requester with a `SpawnReply` carrying that error."""
    try:
        function = pickle.loads(data)
    except Exception as exc:  # boundary: a bad payload is a ClusterFrameError
        raise ClusterFrameError(f"cannot load spawned function: {exc!r}") from exc
    if not callable(function):
        raise ClusterFrameError(f"spawn payload is not callable: {type(function).__name__}")
    return function  # type: ignore[no-any-return]
