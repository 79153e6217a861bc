"""Exceptions of `alight.cluster`.

Every exception the cluster layer raises derives from `ClusterError`::

    ClusterError
    ├── BadSecret       the cluster secret is missing, shorter than 16 bytes, or its key
    │                   file is unreadable or readable by other users
    ├── ClusterFrameError      a node-to-node frame cannot be decoded: unknown version, over the
    │   │               size bound, truncated, or content that is not a batch of messages
    │   └── BatchEncodeError a batch cannot be encoded: a message is not picklable (``index``
    │                   names it) or the frame would exceed the size bound
    ├── AddressError    a bind or advertise address, or a node name, that cannot be used
    │                   (a wildcard bind with nothing to advertise, a malformed HOST:PORT)
    ├── BrokerFrameError a frame from a broker (Redis/Valkey) that is not ours: bad magic,
    │   │               a signature that does not verify, over the size bound, content that
    │   │               is not data of an allowed shape (counted and dropped, never decoded
    │   │               further)
    │   └── UnencodableMessage a message cannot cross a broker: it holds a type that is
    │                   not plain data or a registered record (raised by the broadcast)
    ├── DiscoveryError  discovery cannot say where the nodes are now (a DNS lookup that
    │                   failed, timed out or answered nothing): logged and counted
    ├── NotConnected    there is no link to that node: it is not a member, or its
    │                   connection is not up yet
    └── NodeDown        the node went down (or was declared down) while an operation on it
                        was pending

Exit *reasons* are not exceptions of this tree: a process linked to or monitoring a
process of a node that goes down receives the reason ``"noconnection"`` in its `Exit`
or `Down` message, as in Erlang. One class here is a reason, never raised:
`UnpicklableReason` stands in for an exit reason that cannot cross to another node.
"""

from __future__ import annotations

from typing import Any

from ..errors import AlightError


class ClusterError(AlightError):
    """Root of every exception raised by `alight.cluster`."""


class BadSecret(ClusterError):  # noqa: N818 - leaves name what happened (STYLE 4)
    """The cluster secret cannot be used; the message says why and how to fix it.

    Set ``ALIGHT_CLUSTER_SECRET`` to at least 16 random bytes (for example the output of
    ``python -c "import secrets; print(secrets.token_urlsafe(32))"``), or pass a key file
    readable only by its owner.
    """


class ClusterFrameError(ClusterError):
    """A frame from a peer node cannot be decoded (or a batch cannot be encoded).

    The link that received it treats the frame as lost; the peer is authenticated, so
    this means a version mismatch or a bug, never an attack.
    """


class BatchEncodeError(ClusterFrameError):
    """A batch cannot be encoded. ``index`` is the position of the offending message
    when one message is to blame (it cannot be pickled, or is alone over the bound),
    else ``None`` (the batch as a whole is over the bound: split it and retry)."""

    def __init__(self, message: str, index: int | None = None) -> None:
        self.index = index
        super().__init__(message)


class AddressError(ClusterError, ValueError):
    """A cluster address or node name that cannot be used; the message says why."""


class BrokerFrameError(ClusterError):
    """A frame read from a broker cannot be trusted or decoded; the message says why.

    Anyone who can reach the broker can write to it, so this may be an attack: the
    frame is dropped and counted (`RedisStats.rejected`), nothing of it is acted on.
    """


class UnencodableMessage(BrokerFrameError, TypeError):  # noqa: N818 - names what happened
    """A message cannot be encoded for a broker: only plain data (None, bool, int,
    float, str, bytes, list, tuple, dict, set), pids, refs and registered records cross
    (`alight.cluster.redis`); register a frozen dataclass with ``records=`` to send it."""


class DiscoveryError(ClusterError):
    """Discovery cannot tell the cluster's addresses now; the message says why."""


class NotConnected(ClusterError):  # noqa: N818 - leaves name what happened (STYLE 4)
    """There is no link to the node: it is not a member, or it is not connected yet."""

    def __init__(self, node: Any) -> None:
        self.node = node
        super().__init__(f"not connected to node {node!r}")


class NodeDown(ClusterError):  # noqa: N818 - leaves name what happened (STYLE 4)
    """The node went down while an operation on it was pending (Erlang's ``nodedown``)."""

    def __init__(self, node: Any) -> None:
        self.node = node
        super().__init__(f"node {node!r} is down")


class UnpicklableReason(Exception):  # noqa: N818 - an exit reason, named for what it is
    """The exit reason that a remote link or monitor got in place of one that could not
    be pickled (an exception holding a lock, a payload nested past pickle's recursion
    limit, ...). ``args[0]`` is a bounded ``repr`` of the original. In Erlang every term
    can cross; here the signal still crosses, with this reason, so that the remote
    side is told (it is abnormal: links fire, supervisors restart).

    Not a `ClusterError`: it is never raised, only carried in `Exit` and `Down`.
    """
