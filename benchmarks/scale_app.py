"""The app of ``benchmarks/scale.py``: what 100,000 joined connections are held by.

Served on every node with ``alight node --app benchmarks.scale_app:app --reuse-port``.

- ``scale:all``: a channel that does nothing but exist (every client of the curve joins
  it; a broadcast to it reaches all of them);
- ``scale:room:K``: a room with presence, as Phoenix apps have: after the join the
  channel tracks the socket's ``user_id`` (meta ``{"at": node}``) and pushes
  ``presence_state``; changes reach the room as ``presence_diff`` (the reconnect storm);
- ``scale:control``: the load generator's control channel. ``broadcast`` ``{"ts": t}``
  makes one endpoint broadcast ``msg`` ``{"ts": t}`` to ``scale:all`` (cluster-wide) and
  replies ``{"node": name}``; ``summary`` ``{"rooms": R}`` replies what this node's
  presence replica lists for rooms ``0 .. R-1``: ``{"node", "metas", "users", "full"}``
  (metas listed, distinct user ids, rooms holding exactly 100 users);
  ``broadcast_rooms`` ``{"rooms": R, "seq": k, "ts": t}`` broadcasts ``msg`` ``{"ts",
  "seq"}`` to each of rooms ``0 .. R-1`` (the drain benchmark counts what is lost).
  A room's join replies ``{"node": name}``: the load generator knows where each client is.

``ALIGHT_BENCH_DRAIN=BATCH_SIZE,BATCH_INTERVAL`` sets the endpoint's drainer
(`alight.channels.Drainer`; default: Phoenix's).
"""

from __future__ import annotations

import os
from typing import Any

from alight.actors import self_pid, send
from alight.channels import Channel, Drainer, Endpoint, Error, Ok, Socket
from alight.transports.base import ConnectInfo

ROOM_SIZE = 100
MAX_ROOMS = 10_000
"""Rooms a summary may cover (a million clients)."""
_AFTER_JOIN = "after_join"


class AllChannel(Channel):
    async def join(self, topic: str, payload: Any) -> Ok | Error:
        return Ok()


class RoomChannel(Channel):
    async def join(self, topic: str, payload: Any) -> Ok | Error:
        send(self_pid(), _AFTER_JOIN)  # a push is not allowed inside join
        return Ok({"node": self.endpoint.node.name})

    async def handle_info(self, message: Any) -> None:
        presence = self.endpoint.presence
        if message == _AFTER_JOIN and presence is not None:
            await presence.track(self, self.assigns["user_id"], {"at": self.endpoint.node.name})
            self.push("presence_state", await presence.state(self))


class ControlChannel(Channel):
    async def join(self, topic: str, payload: Any) -> Ok | Error:
        return Ok({"node": self.endpoint.node.name})

    async def handle_in(self, event: str, payload: Any) -> Ok | Error:
        node = self.endpoint.node.name
        if event == "broadcast":
            ts = payload.get("ts") if isinstance(payload, dict) else None
            if not isinstance(ts, int | float):
                return Error({"reason": "broadcast needs a number ts"})
            self.endpoint.broadcast("scale:all", "msg", {"ts": ts})
            return Ok({"node": node})
        if event == "broadcast_rooms":
            rooms, seq = (payload.get("rooms"), payload.get("seq")) if isinstance(payload, dict) else (None, None)
            if not isinstance(rooms, int) or not 0 <= rooms <= MAX_ROOMS or not isinstance(seq, int):
                return Error({"reason": f"broadcast_rooms needs rooms (0 to {MAX_ROOMS}) and an int seq"})
            for room in range(rooms):
                self.endpoint.broadcast(f"scale:room:{room}", "msg", {"ts": payload.get("ts"), "seq": seq})
            return Ok({"node": node})
        if event == "summary":
            rooms = payload.get("rooms") if isinstance(payload, dict) else None
            if not isinstance(rooms, int) or not 0 <= rooms <= MAX_ROOMS:
                return Error({"reason": f"summary needs rooms, an int from 0 to {MAX_ROOMS}"})
            presence = self.endpoint.presence
            assert presence is not None
            metas = full = 0
            users: set[str] = set()
            for room in range(rooms):
                listed = presence.tracker.list(f"scale:room:{room}")
                metas += len(listed)
                keys = {key for key, _ in listed}
                users |= keys
                full += len(keys) == ROOM_SIZE
            return Ok({"node": node, "metas": metas, "users": len(users), "full": full})
        return Error({"reason": f"unknown event {event}"})


class ScaleSocket(Socket):
    channels = {"scale:all": AllChannel, "scale:room:*": RoomChannel, "scale:control": ControlChannel}

    async def connect(self, params: dict[str, Any], connect_info: ConnectInfo) -> bool:
        self.assigns["user_id"] = str(params.get("user_id", "anon"))
        return True


_drain = os.environ.get("ALIGHT_BENCH_DRAIN")
_drainer = (
    Drainer(batch_size=int(_drain.split(",")[0]), batch_interval=float(_drain.split(",")[1])) if _drain else Drainer()
)
app = Endpoint(check_origin=False, name="scale", presence=True, drainer=_drainer, log=None)  # no line per join
app.socket("/socket", ScaleSocket, websocket=True, longpoll=False)
