"""Pids and refs: value semantics, ordering, pickling and Erlang-style printing."""

from __future__ import annotations

import pickle

import cloudpickle
from testkit import Runner

from alight.actors import Node, Pid, Ref, make_ref, self_pid


def test_pid_equality_and_hash_cover_every_field() -> None:
    pid = Pid("a@h", 1, 7)
    assert pid == Pid("a@h", 1, 7)
    assert hash(pid) == hash(Pid("a@h", 1, 7))
    assert pid != Pid("a@h", 2, 7)  # a restarted node's pid is another pid
    assert pid != Pid("b@h", 1, 7)
    assert pid != Pid("a@h", 1, 8)
    assert len({pid, Pid("a@h", 1, 7), Pid("a@h", 2, 7)}) == 2
    assert {pid: "x"}[Pid("a@h", 1, 7)] == "x"


def test_pids_are_ordered() -> None:
    pids = [Pid("b@h", 1, 1), Pid("a@h", 1, 2), Pid("a@h", 1, 1), Pid("a@h", 0, 9)]
    assert sorted(pids) == [Pid("a@h", 0, 9), Pid("a@h", 1, 1), Pid("a@h", 1, 2), Pid("b@h", 1, 1)]
    assert Pid("a@h", 1, 1) < Pid("a@h", 1, 2)


def test_refs_are_hashable_ordered_values() -> None:
    ref = Ref("a@h", 1, 3)
    assert ref == Ref("a@h", 1, 3)
    assert hash(ref) == hash(Ref("a@h", 1, 3))
    assert ref != Ref("a@h", 2, 3)
    assert sorted([Ref("a@h", 1, 4), ref]) == [ref, Ref("a@h", 1, 4)]
    assert ref != Pid("a@h", 1, 3)  # type: ignore[comparison-overlap]


def test_pickle_round_trip() -> None:
    pid, ref = Pid("a@h", 123, 7), Ref("a@h", 123, 9)
    for dumps in (pickle.dumps, cloudpickle.dumps):
        assert pickle.loads(dumps(pid)) == pid
        assert pickle.loads(dumps(ref)) == ref
        assert pickle.loads(dumps({pid: [ref]})) == {pid: [ref]}


def test_repr_outside_any_process_names_the_node() -> None:
    assert repr(Pid("a@h", 1, 42)) == "<a@h.42.0>"
    assert str(Pid("a@h", 1, 42)) == "<a@h.42.0>"
    assert repr(Ref("a@h", 1, 5)) == "#Ref<a@h.5>"


def test_repr_inside_a_process(run: Runner) -> None:
    async def main() -> tuple[str, str, str, str, int]:
        me = self_pid()
        other = Pid("other@h", 1, 42)
        return repr(me), repr(other), repr(make_ref()), str(Ref("other@h", 1, 5)), me.serial

    mine, other, ref, other_ref, serial = run(main)
    assert mine == f"<0.{serial}.0>"
    assert other == "<other@h.42.0>"
    assert ref.startswith("#Ref<0.")
    assert other_ref == "#Ref<other@h.5>"


def test_pids_name_their_node_and_creation() -> None:
    async def main() -> Pid:
        return self_pid()

    first = Node("n@h", creation=1, watchdog_threshold=None).run(main)
    second = Node("n@h", creation=2, watchdog_threshold=None).run(main)
    assert (first.node, first.creation) == ("n@h", 1)
    assert (second.node, second.creation) == ("n@h", 2)
    assert first != second


def test_make_ref_is_unique(run: Runner) -> None:
    async def main() -> list[Ref]:
        return [make_ref() for _ in range(100)]

    refs = run(main)
    assert len(set(refs)) == 100
