"""The reference app: how alight is checked against real Phoenix clients.

Run it with ``alight run alight.examples.reference:app --port 4000`` (binds 127.0.0.1;
from a checkout, ``examples.reference:app`` serves the same app).
Its behaviour is specified in issue 3 and must not drift: the conformance tests
drive it with the official phoenix client over WebSocket and long-poll.

The room channel tracks presence after each join (key: the socket's user_id, meta:
``{"device": ...}``) and pushes ``presence_state``; changes reach the room as
``presence_diff``. On an endpoint without presence it tracks nothing.
"""

from __future__ import annotations

from typing import Any

import orjson

from alight.actors import self_pid, send, send_after, spawn
from alight.channels import Channel, Endpoint, Error, NoReply, Ok, Socket, Stop, reply
from alight.channels.channel import SocketRef
from alight.transports.base import ConnectInfo
from alight.transports.http import HttpRequest, HttpResponse


class RoomChannel(Channel):
    async def join(self, topic: str, payload: Any) -> Ok | Error:
        name = topic.split(":", 1)[1]
        if name == "forbidden":
            return Error({"reason": "unauthorized"})
        device = payload.get("device") if isinstance(payload, dict) else None
        self.assigns["device"] = device if isinstance(device, str) else "unknown"
        # push is not allowed inside join: track and push the state right after it.
        send(self_pid(), _AFTER_JOIN)
        return Ok({"joined": name})

    async def handle_info(self, message: Any) -> None:
        presence = self.endpoint.presence
        if message == _AFTER_JOIN and presence is not None:
            await presence.track(self, self.assigns.get("user_id", "anon"), {"device": self.assigns["device"]})
            self.push("presence_state", await presence.state(self))

    async def handle_in(self, event: str, payload: Any) -> Any:
        if event == "ping":
            return Ok(payload)
        if event == "shout":
            self.broadcast("shout", payload)
            return NoReply()
        if event == "error_reply":
            return Error({"reason": "nope"})
        if event == "push_me":
            self.push("pushed", payload)
            return Ok({})
        if event == "async":
            spawn(_reply_later, self.socket_ref(), payload)
            return NoReply()
        if event == "crash":
            raise RuntimeError("crash requested by the client")
        if event == "stop":
            return Stop("normal", Ok({}))
        if event == "binary":
            return Ok(payload)
        if event == "user":
            return Ok({"user_id": self.assigns.get("user_id")})
        return Error({"reason": f"unknown event {event}"})


_AFTER_JOIN = "after_join"


async def _reply_later(ref: SocketRef, payload: Any) -> None:
    from alight.actors import receive, self_pid

    send_after(0.05, self_pid(), "reply")
    await receive(lambda m: m == "reply")
    reply(ref, Ok(payload))


class UserSocket(Socket):
    channels = {"room:*": RoomChannel}

    async def connect(self, params: dict[str, Any], connect_info: ConnectInfo) -> bool:
        if params.get("token") == "bad":
            return False
        user_id = params.get("user_id")
        self.assigns["user_id"] = user_id if isinstance(user_id, str) and user_id else "anon"
        return True

    def id(self) -> str | None:
        return f"user_socket:{self.assigns['user_id']}"


async def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse.text("ok")


async def api_broadcast(request: HttpRequest) -> HttpResponse:
    try:
        body = orjson.loads(request.body)
        topic, event, payload = body["topic"], body["event"], body["payload"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return HttpResponse(400, (("content-type", "application/json"),), b'{"ok":false,"error":"bad request"}')
    if not isinstance(topic, str) or not isinstance(event, str):
        return HttpResponse(400, (("content-type", "application/json"),), b'{"ok":false,"error":"bad request"}')
    app.broadcast(topic, event, payload)
    return HttpResponse(200, (("content-type", "application/json"),), b'{"ok":true}')


app = Endpoint(check_origin=False, name="reference", presence=True)
app.socket("/socket", UserSocket, websocket=True, longpoll=True)
app.route("GET", "/health", health)
app.route("POST", "/api/broadcast", api_broadcast)

# The same endpoint as an ASGI application: `uvicorn examples.reference:asgi_app`.
asgi_app = app.asgi()
