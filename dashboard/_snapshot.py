"""The dashboard's functional core: JSON-safe rows built from runtime values.

Nothing here does I/O or talks to a process: the collector (`collector`) gathers the
values and these functions turn them into the dicts the page gets (``str``, ``int``,
``float``, ``bool``, ``None``, lists and dicts only). Pids are shown as the node they
live on prints them: ``<0.42.0>`` for a process of the node being inspected, and
`parse_pid` is the one way back from such a string to a `Pid`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from ..actors import BlockReport, Pid, ProcessInfo
from .errors import BadPid

MAX_PID_TEXT = 40
"""Longest pid string `parse_pid` looks at (a serial of up to 30 digits and the brackets)."""

_LOCAL_PID = re.compile(r"<0\.([0-9]{1,30})\.0>")

MAX_DETAIL_PIDS = 100
"""Links (and monitors, and monitors of it) listed in a process's detail; the rest are counted."""

MAX_STACK = 4000
"""Characters of a watchdog report's stack sent to the page (the end of the stack is kept)."""


def parse_pid(text: object, node: str, creation: int) -> Pid:
    """The pid of node ``node`` (incarnation ``creation``) written ``<0.N.0>``.

    Anything else (not a string, too long, another form, a pid of another node)
    raises `BadPid`: the caller answers the client with an error, nothing is evaluated
    or unpickled."""
    if not isinstance(text, str) or len(text) > MAX_PID_TEXT:
        raise BadPid(f"a pid is a string like <0.42.0>, not {str(text)[:MAX_PID_TEXT]!r}")
    match = _LOCAL_PID.fullmatch(text)
    if match is None:
        raise BadPid(f"a pid is a string like <0.42.0>, not {text!r}")
    return Pid(node, creation, int(match.group(1)))


def describe_id(child_id: Hashable) -> str:
    """A supervisor child's id as text: a string as it is, a tuple as its parts
    (``("member", "room:lobby")`` is ``(member, room:lobby)``), anything else as its repr."""
    if isinstance(child_id, str):
        return child_id
    if isinstance(child_id, tuple):
        return "(" + ", ".join(describe_id(part) for part in child_id) + ")"
    return repr(child_id)


def process_row(info: ProcessInfo) -> dict[str, Any]:
    """One row of the process table (what the page sorts: mailbox, messages, status, name)."""
    return {
        "pid": str(info.pid),
        "name": info.name,
        "entry": info.entry,
        "status": info.status,
        "mailbox": info.mailbox_length,
        "messages": info.messages_handled,
        "callback": info.callback,
        "links": len(info.links),
        "trap_exit": info.trap_exit,
    }


def process_detail(info: ProcessInfo) -> dict[str, Any]:
    """Everything `process_info` says about one process (the detail panel): its links,
    monitors and monitors of it, at most `MAX_DETAIL_PIDS` of each (a supervisor of
    thousands of channels is linked to every one), with their totals."""
    return {
        **process_row(info),
        "links": [str(pid) for pid in info.links[:MAX_DETAIL_PIDS]],
        "monitors": [str(ref) for ref in info.monitors[:MAX_DETAIL_PIDS]],
        "monitored_by": [str(pid) for pid in info.monitored_by[:MAX_DETAIL_PIDS]],
        "totals": {
            "links": len(info.links),
            "monitors": len(info.monitors),
            "monitored_by": len(info.monitored_by),
        },
    }


def busiest(rows: Iterable[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """At most ``limit`` process rows, those with the longest mailboxes, then the most
    messages handled, first (the rows a person looks for on a loaded node)."""
    return sorted(rows, key=lambda row: (-row["mailbox"], -row["messages"]))[:limit]


def tree_node(
    child_id: Hashable,
    pid: Pid | None,
    kind: str,
    info: ProcessInfo | None,
    restart: str | None = None,
) -> dict[str, Any]:
    """A node of the supervision tree (its ``children`` are filled in by the walker;
    ``more`` counts children left out, ``unresponsive`` marks a supervisor that did not
    answer ``which_children`` in time, or answered with something else)."""
    return {
        "id": describe_id(child_id),
        "pid": None if pid is None else str(pid),
        "type": kind,
        "restart": restart,
        "name": None if info is None else info.name,
        "entry": None if info is None else info.entry,
        "status": "stopped" if pid is None else ("gone" if info is None else info.status),
        "children": [],
        "more": 0,
        "unresponsive": False,
    }


def counters(stats: object) -> dict[str, int | float]:
    """The numeric fields of a statistics dataclass (an endpoint's, a listener's, ...);
    anything else gives ``{}``."""
    if not dataclasses.is_dataclass(stats) or isinstance(stats, type):
        return {}
    out: dict[str, int | float] = {}
    for f in dataclasses.fields(stats):
        value = getattr(stats, f.name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[f.name] = value
    return out


def rates(before: Mapping[str, float], after: Mapping[str, float], seconds: float) -> dict[str, float]:
    """Per-second rates of the counters in both samples, over ``seconds`` (0 when
    ``seconds`` is not positive; a counter that went down, as after a restart, counts from 0)."""
    if seconds <= 0:
        return {key: 0.0 for key in after if key in before}
    return {
        key: round((value - before[key] if value >= before[key] else value) / seconds, 2)
        for key, value in after.items()
        if key in before
    }


def drops(sample: Mapping[str, Mapping[str, int | float]]) -> dict[str, int | float]:
    """What was lost or refused, from the counters of one sample (groups ``server``,
    ``endpoint``, ``pubsub``, ``cluster``; a missing group counts 0): slow consumers
    disconnected (every transport: ``server`` is the endpoint's `TransportStats`), frames that did not
    decode, refused connections, bad HTTP requests, PubSub encode errors, and messages
    the cluster links dropped or could not decode."""
    server, endpoint = sample.get("server", {}), sample.get("endpoint", {})
    cluster, pubsub = sample.get("cluster", {}), sample.get("pubsub", {})
    return {
        "slow_consumer_disconnects": server.get("slow_consumer_disconnects", 0),
        "invalid_frames": endpoint.get("invalid_frames", 0),
        "refused_connections": endpoint.get("refused", 0),
        "bad_requests": server.get("bad_requests", 0),
        "pubsub_encode_errors": pubsub.get("encode_errors", 0),
        "cluster_dropped": cluster.get("dropped", 0),
        "cluster_bad_frames": cluster.get("bad_frames", 0),
    }


def report_row(report: BlockReport) -> dict[str, Any]:
    """A watchdog `BlockReport` for the page: who held the loop, for how long (ms), when."""
    return {
        "pid": None if report.pid is None else str(report.pid),
        "name": report.name,
        "entry": report.entry,
        "blocked_ms": round(report.blocked_for * 1000, 1),
        "total_ms": None if report.total is None else round(report.total * 1000, 1),
        "at": report.at,
        "stack": report.stack[-MAX_STACK:],
    }


def topic_row(topic: str, subscribers: int, presences: Iterable[tuple[str, Any]] | None) -> dict[str, Any]:
    """A row of the channels table: the topic's local subscribers (its channels on this
    node) and, with presence, how many keys are present and on how many devices (metas)."""
    if presences is None:
        return {"topic": topic, "subscribers": subscribers, "presences": None, "metas": None}
    entries = list(presences)
    return {
        "topic": topic,
        "subscribers": subscribers,
        "presences": len({key for key, _meta in entries}),
        "metas": len(entries),
    }


__all__ = [
    "busiest",
    "counters",
    "describe_id",
    "drops",
    "parse_pid",
    "process_detail",
    "process_row",
    "rates",
    "report_row",
    "topic_row",
    "tree_node",
]
