"""The small map a process keeps its monitors in (a flat tuple of up to `SMALL_PAIRS`
pairs, then a dict) behaves as a dict under any sequence of puts and pops."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from alight.actors._pid import Pid, Ref
from alight.actors._process import SMALL_PAIRS, _has, _items, _pop, _put, _Small

REFS = [Ref("n@h", 1, i) for i in range(12)]
PID = Pid("n@h", 1, 7)

operations = st.lists(st.tuples(st.booleans(), st.integers(0, len(REFS) - 1)), max_size=60)


@given(operations)
def test_the_small_map_is_a_dict(ops: list[tuple[bool, int]]) -> None:
    small: _Small = None
    model: dict[Ref, Pid] = {}
    for put, index in ops:
        ref = REFS[index]
        if put and ref not in model:
            small = _put(small, ref, Pid("n@h", 1, index))
            model[ref] = Pid("n@h", 1, index)
        else:
            small, got = _pop(small, ref)
            assert got == model.pop(ref, None)
        assert sorted(_items(small), key=lambda item: item[0].serial) == sorted(
            model.items(), key=lambda item: item[0].serial
        )
        assert all(_has(small, r) == (r in model) for r in REFS)
        if len(model) <= SMALL_PAIRS and not isinstance(small, dict):
            assert small is None or len(small) == 2 * len(model)


def test_a_flat_tuple_until_it_is_full() -> None:
    small: _Small = None
    for ref in REFS[:SMALL_PAIRS]:
        small = _put(small, ref, PID)
    assert isinstance(small, tuple)
    assert isinstance(_put(small, REFS[SMALL_PAIRS], PID), dict)
    emptied: _Small = small
    for ref in REFS[:SMALL_PAIRS]:
        emptied, _ = _pop(emptied, ref)
    assert emptied is None
