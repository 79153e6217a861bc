"""The dashboard's functional core (`alight.dashboard._snapshot`): plain values in,
JSON-safe dicts out, and the strict parsing of pids that come from a browser."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alight.actors import BlockReport, Pid, ProcessInfo, Ref
from alight.dashboard import BadPid, DashboardError
from alight.dashboard._snapshot import (
    MAX_DETAIL_PIDS,
    MAX_STACK,
    busiest,
    counters,
    describe_id,
    drops,
    parse_pid,
    process_detail,
    process_row,
    rates,
    report_row,
    topic_row,
    tree_node,
)

NODE = "a@127.0.0.1"


def test_parse_pid_reads_a_local_pid() -> None:
    assert parse_pid("<0.42.0>", NODE, 7) == Pid(NODE, 7, 42)
    assert parse_pid("<0.0.0>", NODE, 7) == Pid(NODE, 7, 0)


@pytest.mark.parametrize(
    "text",
    [
        "<a@127.0.0.1.42.0>",  # a pid of another node: ask that node's collector
        "<0.42.1>",
        "<0.42>",
        " <0.42.0>",
        "<0.42.0> ",
        "<0.-1.0>",
        "<0.1e3.0>",
        "<0.\u0661.0>",  # an Arabic-Indic digit: int() would take it, the pattern does not
        "<0." + "9" * 31 + ".0>",
        "",
        "0.42.0",
        "__import__('os')",
        42,
        None,
        ["<0.42.0>"],
        {"pid": "<0.42.0>"},
        "x" * 10_000,
    ],
)
def test_parse_pid_refuses_everything_else(text: object) -> None:
    with pytest.raises(BadPid) as raised:
        parse_pid(text, NODE, 7)
    assert isinstance(raised.value, DashboardError)
    assert len(str(raised.value)) < 200


@given(st.text(max_size=60))
def test_parse_pid_either_refuses_or_reads_the_serial_back(text: str) -> None:
    try:
        pid = parse_pid(text, NODE, 7)
    except BadPid:
        return
    assert text.startswith("<0.")
    assert text.endswith(".0>")
    assert int(text[3:-3]) == pid.serial  # leading zeros allowed: <0.007.0> is <0.7.0>


def test_describe_id() -> None:
    assert describe_id("workers") == "workers"
    assert describe_id(("member", "room:lobby", 3)) == "(member, room:lobby, 3)"
    assert describe_id(("endpoint", ("nested", "x"))) == "(endpoint, (nested, x))"
    assert describe_id(7) == "7"


def _info(serial: int, mailbox: int = 0, handled: int = 0, name: str | None = None) -> ProcessInfo:
    pid = Pid(NODE, 1, serial)
    return ProcessInfo(
        pid=pid,
        name=name,
        entry="tests.Worker",
        status="waiting",
        mailbox_length=mailbox,
        messages_handled=handled,
        links=(Pid(NODE, 1, 1),),
        monitors=(Ref(NODE, 1, 5),),
        monitored_by=(Pid(NODE, 1, 2),),
        trap_exit=False,
        callback="handle_call",
    )


def test_process_rows_are_json_safe() -> None:
    row = process_row(_info(3, mailbox=2, handled=9, name="worker"))
    assert row["name"] == "worker"
    assert (row["mailbox"], row["messages"], row["links"], row["status"]) == (2, 9, 1, "waiting")
    detail = process_detail(_info(3))
    assert detail["links"] == [str(Pid(NODE, 1, 1))]
    assert detail["monitored_by"] == [str(Pid(NODE, 1, 2))]
    assert orjson.loads(orjson.dumps([row, detail])) == [row, detail]


def test_a_detail_lists_a_bounded_number_of_links_and_counts_them_all() -> None:
    # A channels supervisor is linked to every channel: its detail must not carry them all.
    many = tuple(Pid(NODE, 1, n) for n in range(10, 10 + MAX_DETAIL_PIDS * 3))
    info = dataclasses.replace(_info(3), links=many, monitored_by=many)
    detail = process_detail(info)
    assert detail["links"] == [str(pid) for pid in many[:MAX_DETAIL_PIDS]]
    assert len(detail["monitored_by"]) == MAX_DETAIL_PIDS
    assert detail["totals"] == {"links": len(many), "monitors": 1, "monitored_by": len(many)}
    assert process_row(info)["links"] == len(many)


def test_busiest_keeps_the_longest_mailboxes_then_the_most_messages() -> None:
    rows = [process_row(_info(n, mailbox=m, handled=h)) for n, m, h in [(1, 0, 5), (2, 3, 0), (3, 0, 9), (4, 1, 0)]]
    assert [r["pid"] for r in busiest(rows, 3)] == [str(Pid(NODE, 1, n)) for n in (2, 4, 3)]
    assert busiest(rows, 0) == []


def test_tree_node_says_when_a_child_is_not_running() -> None:
    running = tree_node(("jobs", 1), Pid(NODE, 1, 4), "worker", _info(4, name="job"), "permanent")
    assert (running["id"], running["name"], running["status"], running["restart"]) == (
        "(jobs, 1)",
        "job",
        "waiting",
        "permanent",
    )
    assert tree_node("x", None, "worker", None)["status"] == "stopped"
    assert tree_node("x", Pid(NODE, 1, 9), "worker", None)["status"] == "gone"
    assert orjson.loads(orjson.dumps(running)) == running


@dataclass
class _Stats:
    sent: int = 0
    rate: float = 0.5
    flag: bool = True
    label: str = "x"


def test_counters_take_the_numbers_of_a_stats_dataclass() -> None:
    assert counters(_Stats(sent=3)) == {"sent": 3, "rate": 0.5}
    assert counters(_Stats) == {}
    assert counters({"sent": 3}) == {}
    assert counters(None) == {}


def test_rates_per_second() -> None:
    assert rates({"a": 10, "b": 5}, {"a": 30, "b": 5, "c": 1}, 2.0) == {"a": 10.0, "b": 0.0}
    # A counter that went down (its owner restarted) counts from zero.
    assert rates({"a": 100}, {"a": 4}, 2.0) == {"a": 2.0}
    assert rates({"a": 1}, {"a": 9}, 0.0) == {"a": 0.0}


def test_topic_rows_count_presences_and_devices() -> None:
    entries = [("ann", {"device": "web"}), ("ann", {"device": "phone"}), ("bob", {"device": "web"})]
    assert topic_row("room:1", 4, entries) == {"topic": "room:1", "subscribers": 4, "presences": 2, "metas": 3}
    assert topic_row("room:1", 4, None)["presences"] is None


def test_report_rows_keep_the_end_of_the_stack() -> None:
    report = BlockReport(Pid(NODE, 1, 8), "hog", "tests.hog", 0.1234, "x" * (MAX_STACK + 10) + "END", total=0.25)
    row = report_row(report)
    assert (row["blocked_ms"], row["total_ms"], row["name"]) == (123.4, 250.0, "hog")
    assert row["stack"].endswith("END")
    assert len(row["stack"]) == MAX_STACK
    assert report_row(BlockReport(None, None, "?", 0.2, "s"))["pid"] is None


def test_drops_gather_what_was_lost_or_refused() -> None:
    sample = {
        "server": {"slow_consumer_disconnects": 5, "bad_requests": 1},
        "endpoint": {"invalid_frames": 4, "refused": 5},
        "pubsub": {"encode_errors": 6},
        "cluster": {"dropped": 7, "bad_frames": 8},
    }
    assert drops(sample) == {
        "slow_consumer_disconnects": 5,  # every transport, counted in one TransportStats
        "invalid_frames": 4,
        "refused_connections": 5,
        "bad_requests": 1,
        "pubsub_encode_errors": 6,
        "cluster_dropped": 7,
        "cluster_bad_frames": 8,
    }
    assert set(drops({}).values()) == {0}  # a lone node has no cluster group
