"""alight.channels: Phoenix channels on alight processes.

`Socket` authenticates connections and routes topics; `Channel` is the behaviour of
one joined topic (a process per topic per connection); `Endpoint` mounts sockets,
serves HTTP routes and owns `PubSub`. Callback results are typed: `Ok`, `Error`,
`Reply`, `NoReply`, `Stop`.
"""

from .channel import Channel, Error, NoReply, Ok, Reply, SocketRef, Stop, reply
from .endpoint import Endpoint, EndpointStats, SocketMount
from .errors import ChannelError, EncodeError, InvalidMessage, InvalidReturn, MessageRefused, NotJoined, UnsupportedVsn
from .message import Broadcast, Frame, Message
from .pubsub import Fastlane, PubSub
from .socket import Socket

__all__ = [
    "Broadcast",
    "Channel",
    "ChannelError",
    "EncodeError",
    "Endpoint",
    "EndpointStats",
    "Error",
    "Fastlane",
    "Frame",
    "InvalidMessage",
    "InvalidReturn",
    "Message",
    "MessageRefused",
    "NoReply",
    "NotJoined",
    "Ok",
    "PubSub",
    "Reply",
    "Socket",
    "SocketMount",
    "SocketRef",
    "Stop",
    "UnsupportedVsn",
    "reply",
]
