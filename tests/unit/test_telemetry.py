"""`alight.telemetry.Telemetry`, the registry alone (no loop): attach, detach, execute,
failing handlers, spans."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest

from alight.actors import Node
from alight.telemetry import HANDLER_FAILURE, AlreadyAttached, Event, InvalidEvent, Telemetry

A: Event = ("app", "a")
B: Event = ("app", "b")
Call = tuple[Event, dict[str, Any], dict[str, Any], Any]


class Recorder:
    """A handler that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def __call__(self, event: Event, measurements: Mapping[str, Any], metadata: Mapping[str, Any], config: Any) -> None:
        self.calls.append((event, dict(measurements), dict(metadata), config))


def broken(event: Event, measurements: Mapping[str, Any], metadata: Mapping[str, Any], config: Any) -> None:
    raise RuntimeError("handler bug")


def test_execute_calls_the_handlers_of_the_event_in_attach_order_with_their_config() -> None:
    telemetry = Telemetry()
    first, second, other = Recorder(), Recorder(), Recorder()
    telemetry.attach("first", A, first, config={"n": 1})
    telemetry.attach("second", A, second)
    telemetry.attach("other", B, other)
    telemetry.execute(A, {"duration": 0.5}, {"topic": "room:1"})
    assert first.calls == [(A, {"duration": 0.5}, {"topic": "room:1"}, {"n": 1})]
    assert second.calls == [(A, {"duration": 0.5}, {"topic": "room:1"}, None)]
    assert other.calls == []
    telemetry.execute(("app",), {})  # a prefix is another event
    assert len(first.calls) == 1


def test_execute_without_handlers_does_nothing_and_metadata_defaults_to_empty() -> None:
    telemetry = Telemetry()
    assert not telemetry.has_handlers(A)
    telemetry.execute(A, {"x": 1})
    recorder = Recorder()
    telemetry.attach("r", A, recorder)
    assert telemetry.has_handlers(A)
    telemetry.execute(A, {"x": 1})
    assert recorder.calls == [(A, {"x": 1}, {}, None)]


def test_a_taken_handler_id_is_refused_and_the_first_handler_stays() -> None:
    telemetry = Telemetry()
    kept, refused = Recorder(), Recorder()
    telemetry.attach("same", A, kept)
    with pytest.raises(AlreadyAttached, match="same"):
        telemetry.attach("same", B, refused)
    with pytest.raises(AlreadyAttached):
        telemetry.attach_many("same", [A, B], refused)
    telemetry.execute(A, {})
    telemetry.execute(B, {})
    assert len(kept.calls) == 1
    assert refused.calls == []


def test_detach_removes_every_event_of_the_id_and_says_whether_it_was_attached() -> None:
    telemetry = Telemetry()
    recorder = Recorder()
    telemetry.attach_many("many", [A, B, A], recorder)
    assert [info.events for info in telemetry.list_handlers()] == [(A, B)]  # each event once
    telemetry.execute(A, {})
    telemetry.execute(B, {})
    assert [call[0] for call in recorder.calls] == [A, B]
    assert telemetry.detach("many") is True
    assert telemetry.detach("many") is False
    telemetry.execute(A, {})
    telemetry.execute(B, {})
    assert len(recorder.calls) == 2
    assert not telemetry.has_handlers(A)
    assert telemetry.list_handlers() == []
    telemetry.attach("many", A, recorder)  # the id is free again


def test_list_handlers_filters_by_event_prefix() -> None:
    telemetry = Telemetry()
    telemetry.attach("a", A, Recorder(), config="cfg")
    telemetry.attach("other", ("other", "x"), Recorder())
    assert [info.id for info in telemetry.list_handlers(("app",))] == ["a"]
    assert [info.id for info in telemetry.list_handlers()] == ["a", "other"]
    assert telemetry.list_handlers(("app", "a"))[0].config == "cfg"
    assert telemetry.list_handlers(("nothing",)) == []


@pytest.mark.parametrize("event", [(), "app.a", ["app", "a"], ("app", 1)])
def test_malformed_events_are_refused(event: Any) -> None:
    telemetry = Telemetry()
    with pytest.raises(InvalidEvent):
        telemetry.attach("bad", event, Recorder())
    assert telemetry.list_handlers() == []


def test_attach_many_needs_an_event_and_a_callable() -> None:
    telemetry = Telemetry()
    with pytest.raises(InvalidEvent):
        telemetry.attach_many("none", [], Recorder())
    with pytest.raises(TypeError):
        telemetry.attach("not-callable", A, "nope")  # type: ignore[arg-type]
    assert telemetry.list_handlers() == []


def test_a_failing_handler_is_detached_logged_and_reported_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    telemetry = Telemetry()
    before, after, failures = Recorder(), Recorder(), Recorder()
    telemetry.attach("before", A, before)
    telemetry.attach("broken", A, broken, config="cfg")
    telemetry.attach("after", A, after)
    telemetry.attach("failures", HANDLER_FAILURE, failures)
    with caplog.at_level(logging.ERROR, logger="alight.telemetry"):
        telemetry.execute(A, {"n": 1}, {"m": 2})  # the caller sees no error
    assert len(before.calls) == len(after.calls) == 1
    assert [info.id for info in telemetry.list_handlers(A)] == ["before", "after"]
    assert "'broken'" in caplog.text
    assert "handler bug" in caplog.text
    [(event, measurements, metadata, _)] = failures.calls
    assert event == HANDLER_FAILURE
    assert "monotonic_time" in measurements
    assert metadata["handler_id"] == "broken"
    assert metadata["handler_config"] == "cfg"
    assert metadata["event_name"] == A
    assert metadata["kind"] == "error"
    assert isinstance(metadata["reason"], RuntimeError)
    assert metadata["stacktrace"]
    telemetry.execute(A, {})
    assert len(before.calls) == len(after.calls) == 2


def test_a_handler_may_detach_itself_while_it_runs() -> None:
    telemetry = Telemetry()
    later = Recorder()

    def once(event: Event, measurements: Mapping[str, Any], metadata: Mapping[str, Any], config: Any) -> None:
        telemetry.detach("once")

    telemetry.attach("once", A, once)
    telemetry.attach("later", A, later)
    telemetry.execute(A, {})
    telemetry.execute(A, {})
    assert len(later.calls) == 2
    assert [info.id for info in telemetry.list_handlers()] == ["later"]


def test_span_emits_start_and_stop_with_a_duration_and_the_stop_metadata() -> None:
    telemetry = Telemetry()
    recorder = Recorder()
    telemetry.attach_many("span", [("render", "start"), ("render", "stop"), ("render", "exception")], recorder)
    with telemetry.span(("render",), {"page": "home"}) as meta:
        assert [call[0] for call in recorder.calls] == [("render", "start")]
        meta["size"] = 10
    (_, start_m, start_meta, _), (stop, stop_m, stop_meta, _) = recorder.calls
    assert {"monotonic_time", "system_time"} <= start_m.keys()
    assert start_meta["page"] == "home"
    assert "size" not in start_meta
    assert stop == ("render", "stop")
    assert stop_m["duration"] >= 0
    assert stop_meta["page"] == "home"
    assert stop_meta["size"] == 10
    assert stop_meta["telemetry_span_context"] is start_meta["telemetry_span_context"]


def test_span_emits_exception_and_lets_the_error_through() -> None:
    telemetry = Telemetry()
    recorder = Recorder()
    telemetry.attach_many("span", [("render", "start"), ("render", "stop"), ("render", "exception")], recorder)
    error = ValueError("bad page")
    with pytest.raises(ValueError, match="bad page"), telemetry.span(("render",), {"page": "x"}):
        raise error
    assert [call[0] for call in recorder.calls] == [("render", "start"), ("render", "exception")]
    _, measurements, metadata, _ = recorder.calls[1]
    assert measurements["duration"] >= 0
    assert metadata["kind"] == "error"
    assert metadata["reason"] is error
    assert metadata["page"] == "x"
    assert metadata["stacktrace"]


def test_each_node_has_its_own_registry() -> None:
    first, second = Node("a"), Node("b")
    recorder = Recorder()
    first.telemetry.attach("r", A, recorder)
    second.telemetry.execute(A, {})
    assert recorder.calls == []
    assert second.telemetry.list_handlers() == []
