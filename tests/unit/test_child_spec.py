"""Child specs are validated where they are built, and each error names its field
(OTP's ``supervisor:check_childspecs/1``)."""

from __future__ import annotations

from typing import Any

import pytest

from alight.actors import ChildSpec, InvalidChildSpec, Pid
from alight.actors._child import check_specs


def start() -> Pid | None:
    return None


def test_unhashable_id() -> None:
    with pytest.raises(InvalidChildSpec, match="'id'") as info:
        ChildSpec(id=["not", "hashable"], start=start)  # type: ignore[arg-type]
    assert info.value.field == "id"


def test_start_not_callable() -> None:
    with pytest.raises(InvalidChildSpec) as info:
        ChildSpec(id="a", start="not callable")  # type: ignore[arg-type]
    assert info.value.field == "start"


@pytest.mark.parametrize("restart", ["always", None, 1, "Permanent"])
def test_bad_restart(restart: Any) -> None:
    with pytest.raises(InvalidChildSpec) as info:
        ChildSpec(id="a", start=start, restart=restart)
    assert info.value.field == "restart"
    assert "permanent, transient, temporary" in str(info.value)


@pytest.mark.parametrize("type_", ["process", None, "Worker"])
def test_bad_type(type_: Any) -> None:
    with pytest.raises(InvalidChildSpec) as info:
        ChildSpec(id="a", start=start, type=type_)
    assert info.value.field == "type"


@pytest.mark.parametrize("shutdown", [-1, -0.5, True, False, "soon", "kill", [5], float("nan")])
def test_bad_shutdown(shutdown: Any) -> None:
    with pytest.raises(InvalidChildSpec) as info:
        ChildSpec(id="a", start=start, shutdown=shutdown)
    assert info.value.field == "shutdown"


@pytest.mark.parametrize("shutdown", [0, 0.5, 5, "brutal_kill", "infinity"])
def test_good_shutdown(shutdown: Any) -> None:
    assert ChildSpec(id="a", start=start, shutdown=shutdown).shutdown == shutdown


def test_default_shutdown_is_5_seconds_for_workers_and_infinity_for_supervisors() -> None:
    assert ChildSpec(id="w", start=start).shutdown == 5.0
    assert ChildSpec(id="s", start=start, type="supervisor").shutdown == "infinity"


def test_defaults() -> None:
    spec = ChildSpec(id="w", start=start)
    assert (spec.restart, spec.type) == ("permanent", "worker")


def test_duplicate_ids() -> None:
    with pytest.raises(InvalidChildSpec, match="duplicate child id 'a'") as info:
        check_specs([ChildSpec(id="a", start=start), ChildSpec(id="b", start=start), ChildSpec(id="a", start=start)])
    assert info.value.field == "id"


def test_not_a_child_spec() -> None:
    with pytest.raises(InvalidChildSpec) as info:
        check_specs([ChildSpec(id="a", start=start), {"id": "b"}])
    assert info.value.field == "spec"
