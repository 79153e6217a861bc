"""alight.channels: Phoenix channels on alight processes.

`Socket` authenticates connections and routes topics; `Channel` is the behaviour of
one joined topic (a process per topic per connection); `Endpoint` mounts sockets,
serves HTTP routes and owns `PubSub`; presence, long-poll, metrics, the dashboard and
the cluster attach to it as extensions (`Extension`, `alight.channels.extension`). Callback results
are typed: `Ok`, `Error`, `Reply`, `NoReply`, `Stop`.
"""

from .channel import Channel, Error, NoReply, Ok, Reply, SocketRef, Stop, reply
from .drainer import Drainer, DrainReport
from .endpoint import Endpoint, EndpointStats, SocketMount
from .errors import (
    ChannelError,
    EncodeError,
    EndpointNotRunning,
    InvalidChannelReturn,
    InvalidMessage,
    MessageRefused,
    NotJoined,
    UnsupportedVsn,
)
from .extension import Extension, Phase
from .message import Broadcast, Frame, Message
from .pubsub import Fastlane, PubSub
from .socket import Socket

__all__ = [
    "Broadcast",
    "Channel",
    "ChannelError",
    "EncodeError",
    "DrainReport",
    "Drainer",
    "Endpoint",
    "EndpointNotRunning",
    "EndpointStats",
    "Error",
    "Extension",
    "Fastlane",
    "Frame",
    "InvalidChannelReturn",
    "InvalidMessage",
    "Message",
    "MessageRefused",
    "NoReply",
    "NotJoined",
    "Ok",
    "Phase",
    "PubSub",
    "Reply",
    "Socket",
    "SocketMount",
    "SocketRef",
    "Stop",
    "UnsupportedVsn",
    "reply",
]
