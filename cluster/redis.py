"""PubSub and presence across nodes that share only a Redis (or Valkey) server.

Phoenix's ``phoenix_pubsub_redis`` in alight, for deployments where the nodes cannot
reach each other (no mesh): add the extension to the endpoint, on every node::

    app.extend(RedisPubSub("redis://10.0.0.9:6379/0"))   # or: alight run --pubsub URL

and every broadcast (``broadcast``, ``Endpoint.broadcast``, the ``disconnect`` of a
socket id) reaches the subscribers of every node, presence replicates (the tracker's
gossip over the broker, as Phoenix.Tracker's over PubSub, with the cluster timing
`CLUSTER_TRACKER_SETTINGS`), and long-poll requests are served by any node
(`alight.channels.longpoll` answers through PubSub). Each node needs a name of its own
(`Node` name): the replicas of presence are named after it.

How it travels: every node subscribes to two Redis channels, ``PREFIX:PUBSUB`` (what is
for every node) and ``PREFIX:PUBSUB:NODE`` (what is for it alone: presence transfers,
long-poll answers); a broadcast is ONE ``PUBLISH``, whatever the number of nodes, queued
by the caller and pipelined by the adapter's process with the others of that moment.

Security: nothing from Redis is unpickled. Messages are data (`_data_codec`: msgpack of
plain values, pids, and registered records — pass ``records=`` for your own frozen
dataclasses), each frame sealed with a MAC (keyed BLAKE2b) under a key derived from the cluster
secret (``ALIGHT_CLUSTER_SECRET``, as for the mesh): a frame that does not verify is
dropped unread and counted (`BrokerStats.rejected`); sequence numbers drop replays.
Use Redis's own ``requirepass``/ACLs and TLS (``rediss://``) to keep others off it.

Faults, each logged once and counted (`BrokerStats`), never a crash of the node:

- Redis down at start, or gone later: the node runs on; broadcasts stay local and
  are counted ``dropped`` until the connection is back (retried every ≤ 2 s with
  jitter); what other nodes published meanwhile is counted ``lost`` on arrival of their
  next message. Presence needs nothing more: its heartbeats stop, other nodes take
  this one for down after ``down_period`` and bring its presences back once heartbeats
  resume, as after a partition of the mesh.
- Redis slow: a command that takes more than ``command_timeout`` counts its messages
  ``dropped`` and reconnects; the queue to Redis is bounded (``max_queue``), and what
  does not fit is ``dropped``.
- A stalled subscription (no reply to its PING for three ``ping_interval``s): reconnected.
- Two live nodes with one name: their messages are dropped and the log says so.

Delivery is Redis pub/sub's: at most once, in order per sender; as with the mesh (and
Phoenix), nothing is replayed after an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import secrets
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..actors import ChildSpec, Pid, spawn_link
from ..channels.extension import Extension, Phase
from ..channels.longpoll import WIRE_RECORDS
from ..channels.presence.lowlevel import (
    GracefulPermdown,
    Heartbeat,
    Replica,
    ReplicaMessage,
    TransferAck,
    TransferReq,
)
from ..channels.pubsub import LocalAdapter
from ._broker import BrokerStats, Receiver, Sequencer, Stream
from ._data_codec import ORIGIN_BYTES, DataCodec, open_frame, origin_of, seal
from ._keys import derive_key, derive_keys, derive_secret, load_secret
from .errors import BrokerFrameError, ClusterError, UnencodableMessage
from .presence import replicate_through

if TYPE_CHECKING:
    from ..actors import Node
    from ..channels.endpoint import Endpoint
    from ..channels.presence.tracker import Tracker
    from ..channels.pubsub import PubSub

__all__ = ["RedisAdapter", "RedisPubSub"]

log = logging.getLogger("alight.cluster.redis")

_PUBSUB, _PRESENCE = 0, 1
"""What a message is for: a PubSub dispatch, or a presence shard."""
_BATCH = 512
"""Messages per pipeline at most (a loop turn's broadcasts usually fit in one)."""
_MAX_BACKOFF = 2.0


@dataclass(frozen=True, slots=True)
class RedisPubSub(Extension):
    """The endpoint extension (module docstring). ``url`` is redis-py's
    (``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS); the seal's
    key comes from ``secret`` or ``key_file`` or ``ALIGHT_CLUSTER_SECRET``, as
    `load_secret` finds it (`BadSecret` when there is none). ``prefix`` names the Redis
    channels (give clusters that share a Redis different prefixes)."""

    url: str = "redis://127.0.0.1:6379/0"
    secret: bytes | str | None = None
    key_file: str | None = None
    prefix: str = "alight"
    records: tuple[type, ...] = ()
    """Your own frozen dataclasses that may be broadcast (their fields must be data)."""
    max_queue: int = 10_000
    """Messages waiting for Redis at most; beyond, ``dropped``."""
    max_frame_size: int = 16 * 1024 * 1024
    """A frame read from Redis over this is rejected unread."""
    connect_timeout: float = 2.0
    command_timeout: float = 2.0
    ping_interval: float = 1.0

    phase = Phase.CLUSTER

    def child_specs(self, endpoint: Endpoint) -> Sequence[ChildSpec]:
        adapter = RedisAdapter(self, endpoint)
        return [ChildSpec(id="redis", start=lambda: spawn_link(adapter.run), shutdown=2 * self.command_timeout)]


class RedisAdapter:
    """One endpoint's PubSub `Adapter` and presence `PermdownReplicator` over Redis,
    and the body of the process that talks to Redis (`RedisPubSub.child_specs`
    builds one; ``endpoint.pubsub.adapter`` is it once started)."""

    def __init__(self, config: RedisPubSub, endpoint: Endpoint) -> None:
        pubsub = endpoint.pubsub
        if not isinstance(pubsub.adapter, LocalAdapter):
            raise ClusterError(
                f"endpoint {endpoint.name!r} already forwards its broadcasts ({type(pubsub.adapter).__name__}): "
                "use the mesh or Redis, not both"
            )
        keys = derive_keys(load_secret(secret=config.secret, key_file=config.key_file))
        self.config = config
        self.pubsub: PubSub = pubsub
        self.node: Node = pubsub.node
        self.stats = BrokerStats()
        self.codec = DataCodec((*WIRE_RECORDS, *config.records))
        self._where = _redact(config.url)
        """The URL without its password, for the log."""
        self._key = derive_key(keys, f"redis:{config.prefix}")
        self._origin = secrets.token_bytes(ORIGIN_BYTES)
        """This incarnation's tag in every frame it publishes: its echo is dropped unread."""
        base = f"{config.prefix}:{pubsub.name}"
        self.channel = base
        """The Redis channel of what is for every node."""
        self.own_channel = self._direct_channel(self.node.name)
        """The Redis channel of what is for this node alone."""
        self._all = base.encode()
        self._own = self.own_channel.encode()
        self._sequencer = Sequencer()
        self._receiver = Receiver(self.node.name, self.node.creation)
        self._queue: deque[tuple[bytes, bytes]] = deque()
        self._wake = asyncio.Event()
        self._publishing = False
        self._subscribed = False
        self._overflowing = False
        self._conflicts_logged: set[str] = set()
        self.tracker: Tracker | None = None
        pubsub.adapter = self
        if endpoint.secret_key_generated:
            # Every node must sign and verify the same long-poll tokens (as on the mesh).
            endpoint.secret_key_base = derive_secret(keys, f"endpoint:{endpoint.name}")
        if endpoint.presence is not None:
            self.tracker = endpoint.presence.tracker
            replicate_through(self.tracker, self)

    @property
    def connected(self) -> bool:
        """True while this node both publishes to Redis and is subscribed."""
        return self._publishing and self._subscribed

    @property
    def waiting(self) -> int:
        """Messages queued for Redis now (at most `RedisPubSub.max_queue`)."""
        return len(self._queue)

    def _direct_channel(self, node_name: str) -> str:
        return f"{self.channel}:{node_name}"

    # -- PubSub Adapter (called in the broadcaster's process) --------------------------

    def forward(self, topic: str, message: Any, from_pid: Pid | None) -> None:
        """Publish ``message`` once for every other node (raises `UnencodableMessage`
        if it is not data: the broadcast fails as a whole, nothing is delivered)."""
        self._enqueue(self._all, "all", None, _PUBSUB, topic, message)

    def direct(self, node_name: str, topic: str, message: Any) -> None:
        self._enqueue(self._direct_channel(node_name).encode(), "direct", node_name, _PUBSUB, topic, message)

    # -- presence Replicator (called in the tracker's shard processes) ------------------

    def publish(self, heartbeat: Heartbeat) -> None:
        self._replicate(self._all, "all", None, heartbeat)

    def transfer_req(self, shard: str, to: Replica, ref: int, request: TransferReq) -> None:
        self._replicate(self._direct_channel(to.name).encode(), "direct", to.name, request)

    def transfer_ack(self, shard: str, to: Replica, ref: int, ack: TransferAck) -> None:
        self._replicate(self._direct_channel(to.name).encode(), "direct", to.name, ack)

    def graceful_permdown(self, message: GracefulPermdown) -> None:
        self._replicate(self._all, "all", None, message)

    def _replicate(self, channel: bytes, stream: Stream, to: str | None, message: ReplicaMessage) -> None:
        try:
            self._enqueue(channel, stream, to, _PRESENCE, message.shard, message)
        except UnencodableMessage as error:
            # A shard must not crash for a meta that is not data: the presence stays
            # local and the log says which.
            self.stats.unencodable += 1
            log.error("redis: a presence message of %s cannot cross Redis: %s", message.shard, error)

    def _enqueue(self, channel: bytes, stream: Stream, to: str | None, kind: int, target: str, message: Any) -> None:
        node = self.node
        seq = self._sequencer.next_all() if to is None else self._sequencer.next_direct(to)
        body = self.codec.encode((node.name, node.creation, seq, kind, target, message))
        if not self._publishing:
            self.stats.dropped += 1
            return
        if len(self._queue) >= self.config.max_queue:
            self.stats.dropped += 1
            if not self._overflowing:
                self._overflowing = True
                log.warning("redis: %d messages already wait for Redis; dropping (slow Redis?)", len(self._queue))
            return
        self._queue.append((channel, seal(self._key, channel, self._origin, body)))
        self._wake.set()
        if kind == _PUBSUB:
            self.stats.forwarded += 1
        else:
            self.stats.replicated += 1

    # -- the process ---------------------------------------------------------------------

    async def run(self) -> None:
        """The body of the adapter's process: subscribe and publish until stopped."""
        config = self.config
        client = aioredis.Redis.from_url(
            config.url, socket_connect_timeout=config.connect_timeout, socket_timeout=config.command_timeout
        )
        subscriber = aioredis.Redis.from_url(config.url, socket_connect_timeout=config.connect_timeout)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._subscribe(subscriber))
                group.create_task(self._publish(client))
        finally:
            await self._flush(client)  # a graceful permdown queued by the shards' stop
            await client.aclose()
            await subscriber.aclose()

    async def _subscribe(self, client: aioredis.Redis) -> None:
        """Keep a subscription to our two channels, reconnecting with backoff."""
        failures = 0
        since: float | None = None
        while True:
            pubsub = client.pubsub()
            try:
                async with asyncio.timeout(self.config.connect_timeout + self.config.command_timeout):
                    await pubsub.subscribe(self._all, self._own)
                if since is not None:
                    log.warning("redis: subscribed again to %s after %.1f s", self._where, time.monotonic() - since)
                elif not self.stats.disconnects:
                    log.info("redis: PubSub %s over %s as node %s", self.channel, self._where, self.node.name)
                failures, since = 0, None
                self._subscribed = True
                await self._listen(pubsub)
            except (RedisError, OSError, TimeoutError) as error:
                self._subscribed = False
                self.stats.disconnects += 1
                if since is None:
                    since = time.monotonic()
                    log.warning(
                        "redis: no subscription to %s (%s); broadcasts stay on this node until it is back, "
                        "retrying every %.0f s at most",
                        self._where,
                        _describe(error),
                        _MAX_BACKOFF,
                    )
                failures += 1
            finally:
                await _close_quietly(pubsub)
            await asyncio.sleep(_backoff(failures))

    async def _listen(self, pubsub: aioredis.client.PubSub) -> None:
        """Hand every message to `_receive`, reading with no timer per message (a third
        of redis-py's cost per read); `_watch` PINGs when the line is idle and raises
        TimeoutError here when nothing at all came back for three intervals."""
        self._heard = time.monotonic()
        self._stalled = False
        reader = asyncio.current_task()
        assert reader is not None
        watchdog = asyncio.get_running_loop().create_task(self._watch(pubsub, reader))
        try:
            while True:
                message = await pubsub.get_message(timeout=None)
                self._heard = time.monotonic()
                if message is not None and message.get("type") == "message":
                    self._receive(message["channel"], message["data"])
        except asyncio.CancelledError:
            if self._stalled and reader.uncancel() == 0:
                raise TimeoutError(f"no answer from Redis for {time.monotonic() - self._heard:.1f} s") from None
            raise
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog

    async def _watch(self, pubsub: aioredis.client.PubSub, reader: asyncio.Task[Any]) -> None:
        interval = self.config.ping_interval
        while True:
            await asyncio.sleep(interval)
            silent = time.monotonic() - self._heard
            if silent > 3 * interval:
                self._stalled = True
                reader.cancel()
                return
            if silent >= interval:
                try:
                    await pubsub.ping()
                except (RedisError, OSError) as error:
                    log.debug("redis: a PING failed (%s); the reader will see the connection go", error)

    async def _publish(self, client: aioredis.Redis) -> None:
        """Reach Redis, then pipeline what is queued, one batch at a time. On a failure
        the batch (and what waits) is dropped and counted, as messages to a node that
        is down; broadcasts are dropped at once until a PING goes through again."""
        queue = self._queue
        while True:
            await self._reach(client)
            while self._publishing:
                if not queue:
                    self._wake.clear()
                    self._overflowing = False
                    await self._wake.wait()
                batch = [queue.popleft() for _ in range(min(len(queue), _BATCH))]
                try:
                    await self._send(client, batch)
                except asyncio.CancelledError:
                    # Stopping: `_flush` sends it again with the rest (a frame that did
                    # reach Redis arrives twice and is dropped as a replay).
                    queue.extendleft(reversed(batch))
                    raise
                except (RedisError, OSError, TimeoutError) as error:
                    dropped = len(batch) + len(queue)
                    queue.clear()
                    self.stats.dropped += dropped
                    self.stats.disconnects += 1
                    self._publishing = False
                    log.warning(
                        "redis: publishing to %s failed (%s): %d messages dropped; broadcasts stay on this node "
                        "until it answers again",
                        self._where,
                        _describe(error),
                        dropped,
                    )

    async def _reach(self, client: aioredis.Redis) -> None:
        """PING Redis until it answers (with backoff); then accept messages again."""
        failures = 0
        since = time.monotonic()
        while True:
            try:
                async with asyncio.timeout(self.config.connect_timeout + self.config.command_timeout):
                    await client.ping()  # type: ignore[misc]  # redis-py's stubs: sync or async
                break
            except (RedisError, OSError, TimeoutError) as error:
                if failures == 0 and self.stats.disconnects == 0:
                    log.warning(
                        "redis: cannot reach %s (%s); broadcasts stay on this node until it answers, retrying",
                        self._where,
                        _describe(error),
                    )
                failures += 1
                await asyncio.sleep(_backoff(failures))
        if failures or self.stats.disconnects:
            log.warning("redis: publishing to %s again after %.1f s", self._where, time.monotonic() - since)
        self._publishing = True

    async def _send(self, client: aioredis.Redis, batch: list[tuple[bytes, bytes]]) -> None:
        async with asyncio.timeout(self.config.command_timeout):
            pipe = client.pipeline(transaction=False)
            for channel, frame in batch:
                pipe.publish(channel, frame)
            await pipe.execute()
        self.stats.published += len(batch)

    async def _flush(self, client: aioredis.Redis) -> None:
        if not self._queue or not self._publishing:
            return
        batch = list(self._queue)
        self._queue.clear()
        try:
            await self._send(client, batch)
        except (RedisError, OSError, TimeoutError) as error:
            self.stats.dropped += len(batch)
            log.warning("redis: %d messages not published at shutdown (%s)", len(batch), _describe(error))

    # -- what arrives ----------------------------------------------------------------

    def _receive(self, channel: bytes, frame: Any) -> None:
        if type(frame) is bytes and origin_of(frame) == self._origin:
            return  # our own broadcast, echoed by Redis
        stats = self.stats
        try:
            body = open_frame(self._key, channel, frame, self.config.max_frame_size)
            envelope = self.codec.decode(body)
            sender, creation, seq, kind, target, message = _envelope(envelope)
        except BrokerFrameError as error:
            stats.rejected += 1
            if stats.rejected == 1 or stats.rejected % 1000 == 0:
                log.warning("redis: rejected a frame on %s (%d so far): %s", channel[:80], stats.rejected, error)
            return
        stream: Stream = "all" if channel == self._all else "direct"
        verdict = self._receiver.accept(sender, creation, stream, seq, stats)
        if verdict != "deliver":
            if verdict == "conflict" and sender not in self._conflicts_logged:
                self._conflicts_logged.add(sender)
                log.error(
                    "redis: two live nodes are named %r on %s (incarnations %d and another): their messages are "
                    "dropped; give every node its own name",
                    sender,
                    self.channel,
                    creation,
                )
            return
        stats.by_node[sender] = stats.by_node.get(sender, 0) + 1
        if kind == _PUBSUB:
            stats.received += 1
            self.pubsub.local_broadcast(target, message)
        elif isinstance(message, Heartbeat | TransferReq | TransferAck | GracefulPermdown) and self.tracker:
            stats.replicas_received += 1
            self.tracker.deliver(message)
        else:
            stats.unroutable += 1


def _envelope(value: Any) -> tuple[str, int, int, int, str, Any]:
    if not isinstance(value, tuple) or len(value) != 6:
        raise BrokerFrameError("not an envelope (sender, creation, seq, kind, target, message)")
    sender, creation, seq, kind, target, message = value
    if type(sender) is not str or type(creation) is not int or type(seq) is not int or type(target) is not str:
        raise BrokerFrameError("malformed envelope")
    if kind not in (_PUBSUB, _PRESENCE):
        raise BrokerFrameError(f"unknown message kind {kind!r}")
    return sender, creation, seq, kind, target, message


def _redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (the log must not leak it)."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def _backoff(failures: int) -> float:
    """Exponential from 0.1 s to `_MAX_BACKOFF`, with jitter (so that the nodes of a
    cluster do not all reconnect in the same instant)."""
    delay: float = min(_MAX_BACKOFF, 0.1 * 2 ** min(failures, 8))
    return delay * random.uniform(0.5, 1.0)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


async def _close_quietly(pubsub: aioredis.client.PubSub) -> None:
    try:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    except (RedisError, OSError):
        log.debug("redis: closing a broken subscription failed", exc_info=True)
